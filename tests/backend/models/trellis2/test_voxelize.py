"""The flexible dual grid of a mesh (upstream's mesh_to_flexible_dual_grid, in numpy)."""

from __future__ import annotations

import numpy as np

from backend.models.trellis2.voxelize import mesh_to_dual_grid, normalise_mesh
from tests.support import shell_meshes


def _sphere(rows: int = 24) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces = shell_meshes.sphere(1.0, rows)
    centre, scale = normalise_mesh(vertices)
    return (vertices - centre) * scale, faces


def test_dual_vertices_sit_on_the_surface_inside_their_voxels() -> None:
    vertices, faces = _sphere()
    res = 32
    grid = mesh_to_dual_grid(vertices, faces, res)
    dual = grid.coords + grid.offsets
    radius = np.linalg.norm(dual - res / 2, axis=1)
    # The polygonal sphere lies between its inscribed and circumscribed radii (res / 2).
    assert radius.max() <= res / 2 + 0.05 and radius.min() >= res / 2 * 0.97
    assert (grid.offsets >= 0).all() and (grid.offsets <= 1).all()
    assert len(np.unique(grid.coords, axis=0)) == len(grid.coords)
    # Each voxel is near the surface: its centre within a voxel diagonal of the sphere.
    centres = np.linalg.norm(grid.coords + 0.5 - res / 2, axis=1)
    assert np.abs(centres - res / 2).max() < np.sqrt(3)


def test_every_grid_edge_the_surface_crosses_is_flagged() -> None:
    """A closed surface crosses each axis line through its interior twice: the flags count
    two crossings per line hitting the sphere, on each axis."""
    vertices, faces = _sphere(32)
    res = 16
    grid = mesh_to_dual_grid(vertices, faces, res)
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        flagged = grid.coords[grid.intersected[:, axis]]
        lines, counts = np.unique(flagged[:, others], axis=0, return_counts=True)
        assert len(lines) > 20 and (counts == 2).mean() > 0.9
        # The flagged edge of voxel c along `axis` is the grid line at c + 1 in the others.
        distance = np.linalg.norm(lines + 1 - res / 2, axis=1)
        assert distance.max() < res / 2


def test_an_open_boundary_pulls_dual_vertices_to_the_rim() -> None:
    """A flat square: dual vertices on its plane; the rim voxels' vertices follow the edge."""
    side = 0.27  # its rim at 15.4 voxels: between grid lines
    vertices = np.array([[-side, -side, 0.05], [side, -side, 0.05], [side, side, 0.05],
                         [-side, side, 0.05]])  # fmt: skip
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    res = 20
    grid = mesh_to_dual_grid(vertices, faces, res)
    dual = (grid.coords + grid.offsets) / res - 0.5
    np.testing.assert_allclose(dual[:, 2], 0.05, atol=1e-6)
    reach = np.abs(dual[:, :2]).max()
    assert side - 0.2 / res < reach <= side + 1e-6
    # Without the boundary term the rim voxels' vertices stay at their cuts' mean, inside.
    without = mesh_to_dual_grid(vertices, faces, res, boundary_weight=0.0)
    inner = np.abs((without.coords + without.offsets) / res - 0.5)[:, :2].max()
    assert inner < side - 0.2 / res
