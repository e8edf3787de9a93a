"""Test helpers: random voxel sets and dense references for the sparse ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


def random_coords(
    counts: list[int], resolution: int, generator: torch.Generator, shuffle: bool = True
) -> Tensor:
    """(sum counts, 4) int32 unique voxels per batch element, batch-sorted, rows shuffled."""
    parts = []
    for b, n in enumerate(counts):
        flat = torch.randperm(resolution**3, generator=generator)[:n]
        if not shuffle:
            flat = flat.sort().values
        x, rest = flat // resolution**2, flat % resolution**2
        xyz = torch.stack([x, rest // resolution, rest % resolution], dim=1)
        parts.append(torch.cat([torch.full((n, 1), b), xyz], dim=1))
    return torch.cat(parts).to(torch.int32)


def shell_coords(resolution: int, inner: float, outer: float) -> Tensor:
    """A spherical shell of voxels (TRELLIS structures are surfaces), batch 0, sorted."""
    axis = torch.arange(resolution)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    radius = ((grid.float() - (resolution - 1) / 2) ** 2).sum(-1).sqrt()
    xyz = grid[(radius > inner) & (radius < outer)]
    return torch.cat([torch.zeros(len(xyz), 1, dtype=torch.long), xyz], dim=1).to(torch.int32)


def to_dense(coords: Tensor, feats: Tensor, batch_size: int, resolution: int) -> Tensor:
    """Scatter (N, C) features into a zero (B, C, R, R, R) grid (x, y, z = D, H, W)."""
    grid = feats.new_zeros(batch_size, feats.shape[1], resolution, resolution, resolution)
    c = coords.long()
    grid[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]] = feats
    return grid


def from_dense(grid: Tensor, coords: Tensor) -> Tensor:
    """Read (B, C, R, R, R) back at the voxels: (N, C)."""
    c = coords.long()
    return grid[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]]


def dense_conv_reference(
    coords: Tensor, feats: Tensor, weight: Tensor, bias: Tensor | None, resolution: int
) -> Tensor:
    """Submanifold conv through F.conv3d with the spconv weight permuted to (Co, Ci, K, K, K)."""
    batch_size = int(coords[:, 0].max()) + 1
    grid = to_dense(coords, feats, batch_size, resolution)
    k = weight.shape[1]
    out = F.conv3d(grid, weight.permute(0, 4, 1, 2, 3), bias, padding=k // 2)
    return from_dense(out, coords)
