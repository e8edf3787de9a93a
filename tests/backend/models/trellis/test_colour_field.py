"""colour_field.py: the decoded colour on the grid vertices, evaluated at any point.

Features are built here from a known colour function: every voxel writes, at each of its
corners, the logit of the function at that corner (channels 53 + 6 c .. +3, corners x fastest
as in FlexiCubes), so the grid vertices hold the function exactly and trilinear interpolation
must give back any function linear in x, y, z."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.trellis.colour_field import colour_field, grid_colours, sample_grid_colours
from backend.models.trellis.mesh_extraction import FEATURE_CHANNELS, to_backend_frame

RES = 8
CORNERS = torch.tensor([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)])


def linear_colour(points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """RGB in (0.1, 0.9), linear in TRELLIS's x, y, z over [-0.5, 0.5]^3."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    stack = torch.stack if isinstance(points, torch.Tensor) else np.stack
    return stack([0.5 + 0.4 * x, 0.5 + 0.3 * y - 0.1 * z, 0.5 - 0.4 * z], -1)


def features(xyz: torch.Tensor, colour=linear_colour) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.cat([torch.zeros(len(xyz), 1, dtype=torch.int32), xyz.int()], dim=1)
    corners = (xyz[:, None, :] + CORNERS[None]).double() / RES - 0.5  # (n, 8, 3)
    rgb = colour(corners).clamp(1e-4, 1 - 1e-4)
    feats = torch.randn(len(xyz), FEATURE_CHANNELS)  # other channels: anything
    colour_block = feats[:, 53:].reshape(len(xyz), 8, 6)
    colour_block[:, :, :3] = torch.logit(rgb).float()
    return coords, feats


def block(low: int, high: int) -> torch.Tensor:
    axis = torch.arange(low, high)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def test_grid_vertices_hold_the_mean_decoded_colour() -> None:
    coords, feats = features(block(2, 5))
    grid = grid_colours(coords, feats, RES)
    assert grid.vertex_ids.shape == (4**3,) and np.all(np.diff(grid.vertex_ids) > 0)
    base = RES + 1
    ids = grid.vertex_ids
    points = np.stack([ids // base**2, ids // base % base, ids % base], 1) / RES - 0.5
    assert np.allclose(grid.colours, linear_colour(points), atol=1e-5)


def test_trilinear_inside_the_decoded_voxels_reproduces_a_linear_colour() -> None:
    coords, feats = features(block(2, 6))
    grid = grid_colours(coords, feats, RES)
    rng = np.random.default_rng(0)
    points = rng.uniform(2 / RES - 0.5, 6 / RES - 0.5, (500, 3))
    assert np.allclose(sample_grid_colours(grid, points), linear_colour(points), atol=1e-5)


def test_a_missing_corner_drops_out_and_a_far_point_takes_the_nearest_vertex() -> None:
    coords, feats = features(torch.tensor([[3, 3, 3]]))
    grid = grid_colours(coords, feats, RES)
    inside = np.array([[3.5, 3.5, 3.5]]) / RES - 0.5
    assert np.allclose(sample_grid_colours(grid, inside), linear_colour(inside), atol=1e-5)
    # Half a voxel past the face x = 4: the far corners are missing, the near ones renormalised.
    beside = np.array([[4.5, 3.25, 3.75]]) / RES - 0.5
    face = np.array([[4.0, 3.25, 3.75]]) / RES - 0.5
    assert np.allclose(sample_grid_colours(grid, beside), linear_colour(face), atol=1e-5)
    far = np.array([[0.45, 0.45, 0.45]])
    corner = np.array([[4, 4, 4]]) / RES - 0.5  # the written vertex nearest to it
    assert np.allclose(sample_grid_colours(grid, far), linear_colour(corner), atol=1e-5)


def test_the_field_takes_points_in_the_backend_frame() -> None:
    coords, feats = features(block(1, 7))
    field = colour_field(grid_colours(coords, feats, RES))
    trellis = torch.rand(200, 3, dtype=torch.float64) * 0.6 - 0.3
    backend = to_backend_frame(trellis).numpy()
    out = field(backend.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (200, 3)
    assert np.allclose(out, linear_colour(trellis.numpy()), atol=1e-5)
    assert not np.allclose(field(trellis.numpy()), out, atol=1e-2)  # the frame matters


@pytest.mark.parametrize("where", [0.0, -0.5 + 1e-9, 0.5 - 1e-9])
def test_points_on_the_grid_planes_are_finite(where: float) -> None:
    coords, feats = features(block(0, RES))
    grid = grid_colours(coords, feats, RES)
    points = np.full((1, 3), where)
    assert np.allclose(sample_grid_colours(grid, points), linear_colour(points), atol=1e-5)


def test_the_torch_form_is_the_numpy_field_on_the_device() -> None:
    """What the bake calls on a GPU job (transfer_torch.query_field) gives the numpy field's
    colours: inside, past a face, at far points (nearest vertex) and on the grid planes."""
    from backend.geometry.transfer_torch import query_field

    coords, feats = features(torch.cat([block(1, 4), block(5, 7)]))
    field = colour_field(grid_colours(coords, feats, RES))
    rng = np.random.default_rng(3)
    points = np.vstack([rng.uniform(-0.5, 0.5, (3000, 3)), [[0.45, 0.45, 0.45], [0, 0, 0]]])
    backend = to_backend_frame(torch.as_tensor(points)).numpy().astype(np.float32)
    on_device = query_field(field, backend, 3, "cpu")
    assert on_device is not None  # the torch form exists, so a CUDA bake stays on the device
    assert np.abs(on_device - field(backend)).max() < 1e-6


def test_a_point_with_no_written_corner_takes_the_nearest_written_vertex_at_any_distance() -> None:
    """The growing-cube search (and its KD-tree fallback for far points) gives what a brute
    force over every written vertex gives: a sparse grid, points near and far from it."""
    from backend.models.trellis.colour_field import GridColours

    res, base = 64, 65
    generator = np.random.default_rng(3)
    vertex = np.unique(generator.integers(0, res + 1, size=(40, 3)), axis=0)
    ids = (vertex[:, 0] * base + vertex[:, 1]) * base + vertex[:, 2]
    order = np.argsort(ids)
    grid = GridColours(res, ids[order], generator.random((len(ids), 3)).astype(np.float32))
    points = generator.random((3000, 3)) - 0.5  # most with no written corner, some far away
    got = sample_grid_colours(grid, points)
    positions = vertex[order] / res - 0.5
    distance = ((points[:, None, :] - positions[None]) ** 2).sum(axis=2)
    lonely = np.ones(len(points), bool)  # no written corner: the cell's 8 corners all absent
    cell = np.clip(np.floor((points + 0.5) * res), 0, res - 1).astype(int)
    written = set(ids.tolist())
    for i, c in enumerate(cell):
        for d in np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T:
            x, y, z = c + d
            if (x * base + y) * base + z in written:
                lonely[i] = False
    assert lonely.sum() > 2500
    expected = grid.colours[distance.argmin(axis=1)]
    assert np.allclose(got[lonely], expected[lonely], atol=1e-6)
