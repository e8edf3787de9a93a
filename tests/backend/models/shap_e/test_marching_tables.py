"""The derived marching-cubes table, run through diffusers' own MeshDecoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from backend.models.shap_e.marching_tables import (
    MAX_TRIANGLES,
    shap_e_mc_tables,
    tables_look_filled,
)


def _decoder():
    from diffusers.pipelines.shap_e.renderer import MeshDecoder

    decoder = MeshDecoder()
    cases, masks = shap_e_mc_tables()
    decoder.cases.copy_(torch.from_numpy(cases))
    decoder.masks.copy_(torch.from_numpy(masks))
    return decoder


def _polygonise(field: np.ndarray) -> trimesh.Trimesh:
    out = _decoder()(torch.from_numpy(field).float(), torch.full((3,), -1.0), torch.full((3,), 2.0))
    return trimesh.Trimesh(out.verts.numpy(), out.faces.numpy(), process=True)


def _lattice(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axis = np.linspace(-1.0, 1.0, n)
    return np.meshgrid(axis, axis, axis, indexing="ij")


def test_table_shape_and_empty_corner_cases() -> None:
    cases, masks = shap_e_mc_tables()
    assert cases.shape == (256, MAX_TRIANGLES, 3) and cases.dtype == np.int64
    assert masks.shape == (256, MAX_TRIANGLES) and masks.dtype == bool
    assert not masks[0].any() and not masks[255].any()
    assert masks[1:255].any(axis=1).all()  # every mixed case makes a surface
    assert cases.min() >= 0 and cases.max() <= 11


def test_every_triangle_vertex_lies_on_a_sign_changing_edge() -> None:
    # Edge e joins corners (a, b); the case must set exactly one of their bits.
    corners = {}
    for axis in range(3):
        for offset in range(4):
            others = [a for a in range(3) if a != axis]
            base = [0, 0, 0]
            base[others[0]], base[others[1]] = offset & 1, offset >> 1
            tip = list(base)
            tip[axis] = 1
            corners[4 * axis + offset] = tuple(x + 2 * y + 4 * z for x, y, z in (base, tip))
    cases, masks = shap_e_mc_tables()
    for case in range(256):
        for edge in cases[case][masks[case]].ravel():
            a, b = corners[int(edge)]
            assert ((case >> a) & 1) != ((case >> b) & 1), (case, edge)


def test_sphere_is_closed_outward_and_of_the_right_volume() -> None:
    xs, ys, zs = _lattice(40)
    radius = 0.6
    mesh = _polygonise(radius - np.sqrt((xs - 0.1) ** 2 + ys**2 + zs**2))
    assert mesh.is_watertight
    assert mesh.volume > 0  # counter-clockwise seen from outside
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * radius**3, rel=0.02)


def test_random_blobs_are_watertight() -> None:
    rng = np.random.default_rng(3)
    xs, ys, zs = _lattice(28)
    field = -0.5 * np.ones_like(xs)
    for centre in rng.uniform(-0.5, 0.5, size=(6, 3)):
        dist2 = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 + (zs - centre[2]) ** 2
        field += np.exp(-dist2 / 0.05)
    field[[0, -1], :, :] = field[:, [0, -1], :] = field[:, :, [0, -1]] = -1.0
    mesh = _polygonise(field)
    assert len(mesh.faces) > 100
    assert mesh.is_watertight and mesh.volume > 0


def test_tables_look_filled() -> None:
    cases, masks = shap_e_mc_tables()
    assert tables_look_filled(cases, masks)
    assert not tables_look_filled(np.zeros_like(cases), np.zeros_like(masks))
