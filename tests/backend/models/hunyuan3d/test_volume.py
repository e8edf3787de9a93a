"""Volume decoding and surface extraction on analytic occupancy fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from backend.models.hunyuan3d import volume
from backend.models.hunyuan3d.volume import (
    Box,
    decode_dense,
    decode_hierarchical,
    extract_surface,
    flashvdm_resolutions,
    grid_points,
    level_resolutions,
    near_surface,
)
from benchmarks.live_memory import LiveBytes


def blob(points: torch.Tensor) -> torch.Tensor:
    """Occupancy logits (1, p) of two overlapping balls: positive inside, |logit| grows away."""
    p = points[0].double()
    a = 0.55 - torch.linalg.norm(p - torch.tensor([0.2, 0.0, 0.0], dtype=p.dtype), dim=-1)
    b = 0.4 - torch.linalg.norm(p - torch.tensor([-0.35, 0.2, 0.1], dtype=p.dtype), dim=-1)
    return (torch.maximum(a, b) * 20).float()[None]


def test_levels_follow_upstream() -> None:
    assert level_resolutions(384) == [96, 192, 384]
    assert level_resolutions(40) == [40]
    assert flashvdm_resolutions(384) == [95, 190, 380]
    assert flashvdm_resolutions(256) == [63, 126, 252]


def test_dense_grid_is_ij_ordered() -> None:
    logits = decode_dense(
        lambda p: p[..., 0] + 10 * p[..., 2], Box(1.0, 4), 7, "cpu", torch.float32
    )
    axis = np.linspace(-1, 1, 5)
    assert logits[4, 0, 0] == pytest.approx(axis[4] + 10 * axis[0])
    assert logits[0, 0, 4] == pytest.approx(axis[0] + 10 * axis[4])


def test_octree_decode_finds_the_dense_surface() -> None:
    box = Box(1.01, 96)
    dense = decode_dense(blob, box, 50_000, "cpu", torch.float32)
    queried: list[int] = []

    def counted(points: torch.Tensor) -> torch.Tensor:
        queried.append(points.shape[1])
        return blob(points)

    octree, octree_box = decode_hierarchical(
        counted, box, 50_000, "cpu", torch.float32, levels=[24, 48, 96]
    )
    assert octree_box == box
    assert sum(queried) < 0.25 * 97**3  # the point of the octree
    dense_mesh = extract_surface(dense, box)
    octree_mesh = extract_surface(octree, box)
    np.testing.assert_allclose(octree_mesh[0], dense_mesh[0], atol=1e-5)
    np.testing.assert_array_equal(octree_mesh[1], dense_mesh[1])


def test_near_surface_ignores_unqueried_neighbours() -> None:
    logits = torch.full((5, 5, 5), 5.0)
    logits[2, 2, 3] = -5.0
    valid = torch.ones_like(logits, dtype=torch.bool)
    assert near_surface(logits, 0.0, valid)[2, 2, 2]
    valid[2, 2, 3] = False
    assert not near_surface(logits, 0.0, valid)[2, 2, 2]


def test_surface_is_outward_wound() -> None:
    box = Box(1.01, 48)
    vertices, faces = extract_surface(decode_dense(blob, box, 50_000, "cpu", torch.float32), box)
    triangles = vertices[faces].astype(np.float64)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    # Signed volume > 0 when faces are counter-clockwise seen from outside.
    assert np.einsum("ij,ij->", triangles[:, 0], normals) > 0


def test_empty_field_has_no_surface() -> None:
    box = Box(1.0, 8)
    with pytest.raises(ValueError, match="no surface"):
        extract_surface(torch.ones((9, 9, 9)), box)


def one_shot_octree(query, box: Box, chunk: int, levels: list[int]) -> torch.Tensor:
    """The octree decode as first written (hy3dgen's order): every fine point listed at once,
    float max-pool dilations, queried in chunks of that list, pasted into the upsampled grid.
    The streaming decode must reproduce it bit for bit."""

    def dilate(mask: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(mask[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0

    logits = decode_dense(query, Box(box.bound, levels[0]), chunk, "cpu", torch.float32)
    valid = torch.ones_like(logits, dtype=torch.bool)
    for depth, resolution in enumerate(levels[1:], start=1):
        fine_box, last = Box(box.bound, resolution), depth == len(levels) - 1
        seeds = near_surface(logits, 0.0, valid)
        seeds = seeds if last else dilate(seeds)
        fine = torch.zeros((fine_box.size,) * 3, dtype=torch.bool)
        index = torch.nonzero(seeds) * 2
        index = index[(index < fine_box.size).all(dim=1)]
        fine[index[:, 0], index[:, 1], index[:, 2]] = True
        for _ in range(2 if last else 1):
            fine = dilate(fine)
        chosen = torch.nonzero(fine)
        points = grid_points(chosen, fine_box)
        values = torch.cat([query(points[None, s : s + chunk])[0] for s in
                            range(0, len(points), chunk)])  # fmt: skip
        upsampled = F.interpolate(
            logits[None, None], size=(fine_box.size,) * 3, mode="trilinear", align_corners=True
        )[0, 0]
        upsampled[chosen[:, 0], chosen[:, 1], chosen[:, 2]] = values
        logits, valid = upsampled, fine
    return logits


def wide_blob(points: torch.Tensor) -> torch.Tensor:
    """A field with |logit| < 0.95 over most of the box: nearly every fine point is queried."""
    p = points[0].double()
    return (0.6 - torch.linalg.norm(p * torch.tensor([1.0, 1.3, 0.8], dtype=p.dtype), dim=-1))[
        None
    ].float() + 0.05 * torch.sin(7 * p[:, 0])[None].float()


@pytest.mark.parametrize("field", [blob, wide_blob])
def test_streamed_octree_is_the_one_shot_octree_bit_for_bit(field, monkeypatch) -> None:
    # Slabs of 3 planes and chunks that straddle them: the chunks must still be the same.
    monkeypatch.setattr(volume, "SLAB_POINTS", 3 * 81**2)
    box, levels, chunk = Box(1.01, 80), [20, 40, 80], 2_999
    sizes: list[int] = []

    def counted(points: torch.Tensor) -> torch.Tensor:
        sizes.append(points.shape[1])
        return field(points)

    streamed, _ = decode_hierarchical(counted, box, chunk, "cpu", torch.float32, levels=levels)
    reference_sizes: list[int] = []

    def reference_counted(points: torch.Tensor) -> torch.Tensor:
        reference_sizes.append(points.shape[1])
        return field(points)

    reference = one_shot_octree(reference_counted, box, chunk, levels)
    assert sizes == reference_sizes
    assert torch.equal(streamed, reference)


def test_bool_dilation_is_the_max_pool_dilation() -> None:
    mask = torch.rand((17, 9, 12), generator=torch.Generator().manual_seed(3)) > 0.93
    pooled = F.max_pool3d(mask[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    assert torch.equal(volume._dilate(mask), pooled)


def test_octree_decode_holds_one_grid_and_one_mask(monkeypatch) -> None:
    """Peak live bytes of the decode's own tensors (the query's work not counted): the fp32
    grid and bool mask of the finest level, 5 bytes a point, plus small change; listing all
    fine points at once held 24 bytes a queried point more (peak ~50 bytes a grid point)."""
    monkeypatch.setattr(volume, "SLAB_POINTS", 2 * 97**2)
    tracker = LiveBytes()
    queried = [0]

    def query(points: torch.Tensor) -> torch.Tensor:
        queried[0] += points.shape[1]
        with tracker.pause():
            values = wide_blob(points)
        return values.clone()

    with tracker:
        decode_hierarchical(query, Box(1.01, 96), 4096, "cpu", torch.float32, levels=[24, 48, 96])
    grid_points_fine = 97**3
    assert queried[0] > 0.5 * grid_points_fine  # the case that held the most
    assert tracker.peak < 6.5 * grid_points_fine
