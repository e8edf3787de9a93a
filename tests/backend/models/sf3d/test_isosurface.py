"""isosurface.py: tet grid, triangle tables and marching tetrahedra on analytic fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.sf3d.isosurface import MarchingTetrahedra, TetGrid, triangle_tables


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def test_regular_grid_tets_are_positive_and_fill_the_cube() -> None:
    grid = TetGrid.regular(3)
    assert grid.vertices.shape == (64, 3) and grid.tets.shape == (6 * 27, 4)
    p = grid.vertices[grid.tets]
    volumes = np.linalg.det(p[:, 1:] - p[:, :1]) / 6.0
    assert (volumes > 0).all()
    assert abs(volumes.sum() - 1.0) < 1e-5


def test_tables_cover_every_case_with_the_crossing_edges() -> None:
    table, counts = triangle_tables()
    assert counts.tolist() == [0, 1, 1, 2, 1, 2, 2, 1, 1, 2, 2, 1, 2, 1, 1, 0]
    assert set(table[3, :6].tolist()) == {1, 2, 3, 4}
    assert (table[0] == -1).all() and (table[15] == -1).all()


def test_sphere_is_closed_outward_and_close_to_the_true_volume() -> None:
    grid = TetGrid.regular(24)
    mt = MarchingTetrahedra(grid, resolution=48)
    points = torch.from_numpy(grid.vertices) - 0.5
    sdf = 0.35 - points.norm(dim=1)  # positive inside
    vertices, faces = mt(sdf)
    v, f = vertices.numpy(), faces.numpy()
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, edge_uses = np.unique(edges, axis=0, return_counts=True)
    assert (edge_uses == 2).all()  # watertight, manifold
    volume = _signed_volume(v - 0.5, f)
    assert volume > 0  # wound outward
    assert abs(volume - 4 / 3 * np.pi * 0.35**3) / (4 / 3 * np.pi * 0.35**3) < 0.02


def test_offsets_move_vertices_by_at_most_one_over_resolution() -> None:
    grid = TetGrid.regular(4)
    mt = MarchingTetrahedra(grid, resolution=8)
    moved = mt.deformed_vertices(torch.full((grid.vertices.shape[0], 3), 50.0))
    shift = moved - torch.from_numpy(grid.vertices)
    assert torch.allclose(shift, torch.full_like(shift, 1 / 8))


def test_upstream_grid_file_is_reoriented_and_gives_the_same_surface(tmp_path) -> None:
    """A grid file in upstream's layout with tets of both orientations (as a file made by other
    tools may have) loads into positive tets: the sphere comes out the same as from ours."""
    grid = TetGrid.regular(12)
    tets = grid.tets.copy()
    tets[::3] = tets[::3][:, [1, 0, 2, 3]]  # a third of them turned inside out
    np.savez(tmp_path / "24_tets.npz", vertices=grid.vertices, indices=tets)
    loaded = TetGrid.from_npz(tmp_path / "24_tets.npz")
    p = loaded.vertices[loaded.tets]
    assert (np.linalg.det(p[:, 1:] - p[:, :1]) > 0).all()
    sdf = 0.35 - (torch.from_numpy(grid.vertices) - 0.5).norm(dim=1)
    ours = MarchingTetrahedra(grid, 24)(sdf)
    theirs = MarchingTetrahedra(loaded, 24)(sdf)
    assert _signed_volume(theirs[0].numpy() - 0.5, theirs[1].numpy()) == pytest.approx(
        _signed_volume(ours[0].numpy() - 0.5, ours[1].numpy()), rel=1e-6
    )
