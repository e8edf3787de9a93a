"""Decimate: face count within 2 %, small surface distance, topology kept, UVs kept exact."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, decimate, quality
from shared_protocol.errors import ErrorCode, ProtocolError


@pytest.mark.parametrize("target", [500, 3000])
def test_watertight_blob_stays_one_clean_body(blob_mesh, target):
    cleaned = clean.clean_mesh(*blob_mesh)
    result = decimate.decimate(cleaned.vertices, cleaned.faces, target)
    assert decimate.within_tolerance(len(result.faces), target)
    topology = quality.topology(result.vertices, result.faces)
    assert topology["watertight"] and topology["pieces"] == 1
    assert topology["euler"] == 2 and topology["zero_area_faces"] == 0
    distance = quality.surface_distance(blob_mesh, (result.vertices, result.faces))
    assert distance["mean_distance_pct"] < (0.15 if target == 500 else 0.025)


def test_open_border_stays_put(sphere_mesh):
    vertices, faces = sphere_mesh
    cap = faces[vertices[faces].mean(axis=1)[:, 1] > -0.3]  # a sphere with a round opening
    cleaned = clean.clean_mesh(vertices, cap)
    before = quality.topology(cleaned.vertices, cleaned.faces)
    result = decimate.decimate(cleaned.vertices, cleaned.faces, 1500)
    after = quality.topology(result.vertices, result.faces)
    assert decimate.within_tolerance(len(result.faces), 1500)
    assert after["pieces"] == 1 and after["non_manifold_edges"] == 0
    assert after["euler"] == before["euler"]  # still a disc: one border loop
    border = result.vertices[_border_vertices(result.faces)]
    assert np.allclose(border[:, 1], -0.3, atol=0.03)  # the opening did not move


def _border_vertices(faces: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return np.unique(unique[counts == 1])


def test_attributes_ride_along_exactly(sphere_mesh):
    vertices, faces = sphere_mesh
    tag = vertices[:, :2] * 3.0  # any per-vertex value tied to the original vertex
    result = decimate.decimate(vertices, faces, 2000, {"tag": tag})
    np.testing.assert_allclose(result.attributes["tag"], result.vertices[:, :2] * 3.0, atol=1e-5)


def test_small_input_is_returned_unchanged(sphere_mesh):
    vertices, faces = sphere_mesh
    result = decimate.decimate(vertices, faces, len(faces) + 10)
    assert result.faces is faces


@pytest.mark.parametrize("target", [0, 10_000_000])
def test_target_out_of_range_is_rejected(sphere_mesh, target):
    with pytest.raises(ProtocolError) as caught:
        decimate.decimate(*sphere_mesh, target)
    assert caught.value.code == ErrorCode.OUT_OF_RANGE


def test_non_manifold_input_still_reaches_the_target(sphere_mesh):
    vertices, faces = sphere_mesh
    # Two spheres glued at one vertex (a bow-tie vertex) plus a fin sharing an edge three ways.
    shift = vertices[np.argmax(vertices[:, 0])] - vertices[np.argmin(vertices[:, 0])]
    second = vertices + shift
    glued = np.argmin(vertices[:, 0])
    second_faces = faces + len(vertices)
    second_faces[second_faces == glued + len(vertices)] = np.argmax(vertices[:, 0])
    fin_tip = len(vertices) * 2
    a, b = faces[0, 0], faces[0, 1]
    all_vertices = np.vstack([vertices, second, [vertices[a] + [0.0, 0.3, 0.0]]])
    all_faces = np.vstack([faces, second_faces, [[a, b, fin_tip]]])
    assert quality.topology(all_vertices, all_faces)["non_manifold_edges"] >= 1
    result = decimate.decimate(all_vertices, all_faces, 3000)
    assert decimate.within_tolerance(len(result.faces), 3000)
    assert quality.topology(result.vertices, result.faces)["zero_area_faces"] == 0
