"""Quality figures: topology counts and surface distance on meshes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import quality


def test_topology_of_a_closed_sphere_and_an_open_one(sphere_mesh):
    vertices, faces = sphere_mesh
    closed = quality.topology(vertices, faces)
    assert closed["watertight"] and closed["euler"] == 2 and closed["pieces"] == 1
    opened = quality.topology(vertices, faces[10:])
    assert not opened["watertight"] and opened["boundary_edges"] > 0


def test_surface_distance_of_a_scaled_copy(sphere_mesh):
    vertices, faces = sphere_mesh
    assert (
        quality.surface_distance((vertices, faces), (vertices, faces))["mean_distance_pct"] < 1e-6
    )
    bigger = vertices * 1.01  # radius 0.6 -> 0.606: 0.006 apart everywhere
    figures = quality.surface_distance((vertices, faces), (bigger, faces))
    diagonal = np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0))
    assert figures["mean_distance_pct"] == pytest.approx(0.006 / diagonal * 100, rel=0.05)
