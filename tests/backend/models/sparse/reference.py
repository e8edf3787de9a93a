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
    """Submanifold conv through F.conv3d with the spconv weight permuted to (Co, Ci, K, K, K).

    K = 1 follows spconv's ``conv1x1`` path, ``mm(feats, weight.view(Ci, Co))``: the stored
    [Co, 1, 1, 1, Ci] buffer read as a (Ci, Co) matrix."""
    batch_size = int(coords[:, 0].max()) + 1
    grid = to_dense(coords, feats, batch_size, resolution)
    k = weight.shape[1]
    if k == 1:
        co, ci = weight.shape[0], weight.shape[-1]
        weight = weight.contiguous().view(ci, co).t().reshape(co, 1, 1, 1, ci)
    out = F.conv3d(grid, weight.permute(0, 4, 1, 2, 3), bias, padding=k // 2)
    return from_dense(out, coords)


def group_norm_per_sample(values: Tensor, coords: Tensor, norm: torch.nn.GroupNorm) -> Tensor:
    """GroupNorm of each batch element's voxels, as (1, C, n)."""
    result = torch.empty_like(values)
    for b in coords[:, 0].unique().tolist():
        rows = coords[:, 0] == b
        part = values[rows].t()[None]
        result[rows] = F.group_norm(part, norm.num_groups, norm.weight, norm.bias, norm.eps)[0].t()
    return result


def reference_subdivide_block(
    block: torch.nn.Module, coords: Tensor, feats: Tensor, resolution: int
) -> tuple[Tensor, Tensor]:
    """Upstream's SparseSubdivideBlock3d from its formula: (child coords, child features)."""

    def conv(c: Tensor, h: Tensor, layer: torch.nn.Module) -> Tensor:
        weight, bias = layer.conv.weight.detach(), layer.conv.bias.detach()
        return dense_conv_reference(c, h, weight, bias, 2 * resolution)

    children = torch.tensor(
        [[0, i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int32
    )
    fine = (coords * torch.tensor([1, 2, 2, 2], dtype=torch.int32))[:, None] + children
    fine = fine.reshape(-1, 4)
    h = F.silu(group_norm_per_sample(feats, coords, block.act_layers[0]))
    h = conv(fine, h.repeat_interleave(8, 0), block.out_layers[0])
    h = F.silu(group_norm_per_sample(h, fine, block.out_layers[1]))
    h = conv(fine, h, block.out_layers[3])
    skip = block.skip_connection
    x = feats.repeat_interleave(8, 0)
    return fine, h + (x if isinstance(skip, torch.nn.Identity) else conv(fine, x, skip))
