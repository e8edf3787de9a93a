"""Our torch marching cubes against scikit-image's, on closed analytic fields and a noisy one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from backend.models.triposr.isosurface import marching_cubes
from backend.models.triposr.torch_marching_cubes import case_table, marching_cubes_torch

AXIS = np.linspace(-1.0, 1.0, 40)
X, Y, Z = np.meshgrid(AXIS, AXIS, AXIS, indexing="ij")
FIELDS = {
    "sphere": 0.6 - np.sqrt(X**2 + Y**2 + Z**2),
    "torus": 0.25 - np.sqrt((np.sqrt(X**2 + Y**2) - 0.55) ** 2 + Z**2),
    "two blobs": np.maximum(0.35 - np.sqrt((X - 0.4) ** 2 + Y**2 + Z**2),
                            0.3 - np.sqrt((X + 0.4) ** 2 + (Y - 0.2) ** 2 + Z**2)),
}


def area_and_volume(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    triangles = vertices.astype(np.float64)[faces]
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    volume = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2]))
    return float(np.linalg.norm(cross, axis=1).sum() / 2), float(volume.sum() / 6)


def is_closed_and_oriented(faces: np.ndarray) -> bool:
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    if len(np.unique(directed, axis=0)) != len(directed):
        return False  # a directed edge used twice: inconsistent winding
    _, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    return bool((counts == 2).all())


def test_case_table_has_classic_size() -> None:
    table = case_table()
    assert table.shape == (256, 5, 3)
    counts = (table[:, :, 0] >= 0).sum(axis=1)
    assert counts[0] == counts[255] == 0 and counts[1] == counts[254] == 1
    assert counts.max() == 5


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_matches_scikit_image_on_closed_surfaces(name: str) -> None:
    field = FIELDS[name].astype(np.float32)
    ours_v, ours_f = marching_cubes(field, 0.0, 1.0, method="torch")
    ref_v, ref_f = marching_cubes(field, 0.0, 1.0, method="skimage")
    assert len(ours_v) == len(ref_v) and len(ours_f) == len(ref_f)
    # Same vertex positions (one per crossed grid edge), listed in another order.
    np.testing.assert_allclose(np.sort(ours_v, axis=0), np.sort(ref_v, axis=0), atol=1e-6)
    ours_area, ours_volume = area_and_volume(ours_v, ours_f)
    ref_area, ref_volume = area_and_volume(ref_v, ref_f)
    assert ours_area == pytest.approx(ref_area, rel=1e-3)
    assert ours_volume == pytest.approx(ref_volume, rel=1e-3) and ours_volume > 0
    assert is_closed_and_oriented(ours_f)


def test_noisy_field_stays_closed_and_close_to_scikit_image() -> None:
    noise = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(40, 40, 40)), 2.0)
    field = np.pad(noise - 0.02, 1, constant_values=-1.0).astype(np.float32)  # closed at walls
    ours_v, ours_f = marching_cubes(field, 0.0, 1.0, method="torch")
    ref_v, ref_f = marching_cubes(field, 0.0, 1.0, method="skimage")
    assert is_closed_and_oriented(ours_f)
    assert area_and_volume(ours_v, ours_f)[0] == pytest.approx(
        area_and_volume(ref_v, ref_f)[0], rel=5e-3
    )
    assert abs(len(ours_f) - len(ref_f)) <= 0.01 * len(ref_f)


def test_empty_and_full_grids() -> None:
    vertices, faces = marching_cubes_torch(torch.ones(5, 5, 5))
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)
