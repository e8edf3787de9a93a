"""Sparse blocks against dense references (F.conv3d, brute-force pooling, F.group_norm)."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from backend.models.sparse.modules import SparseLinear, SparseResBlock3d, SparseSubdivideBlock3d
from backend.models.sparse.tensor import SparseTensor
from tests.backend.models.sparse.reference import (
    DEVICES,
    dense_conv_reference,
    random_coords,
    reference_subdivide_block,
)


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)


def conv(coords: Tensor, feats: Tensor, layer: torch.nn.Module, resolution: int) -> Tensor:
    return dense_conv_reference(
        coords, feats, layer.conv.weight.detach(), layer.conv.bias.detach(), resolution
    )


def brute_downsample(coords: Tensor, feats: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (b, x, y, z) in enumerate(coords.tolist()):
        groups[(b, x // 2, y // 2, z // 2)].append(i)
    keys = sorted(groups)
    pooled = torch.stack([feats[groups[k]].sum(0) / (len(groups[k]) + 1) for k in keys])
    row = {i: j for j, k in enumerate(keys) for i in groups[k]}
    child = torch.tensor(keys, dtype=torch.int32)
    return child, pooled, [row[i] for i in range(len(coords))]


def reference_res_block(
    block: SparseResBlock3d, coords: Tensor, feats: Tensor, emb: Tensor, resolution: int
) -> Tensor:
    scale, shift = block.emb_layers(emb).chunk(2, dim=1)
    norm1 = block.norm1
    h = F.silu(F.layer_norm(feats, feats.shape[-1:], norm1.weight, norm1.bias, 1e-6))
    h = conv(coords, h, block.conv1, resolution)
    batch = coords[:, 0].long()
    h = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + scale[batch]) + shift[batch]
    h = conv(coords, F.silu(h), block.conv2, resolution)
    skip = block.skip_connection
    return h + (
        feats if isinstance(skip, torch.nn.Identity) else F.linear(feats, skip.weight, skip.bias)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_res_blocks_down_and_up_match_dense_reference(device: str) -> None:
    generator = torch.Generator().manual_seed(0)
    coords = random_coords([120, 80], 8, generator)
    feats = torch.randn(len(coords), 4, generator=generator, dtype=torch.float64)
    emb = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    down = SparseResBlock3d(4, 5, out_channels=6, downsample=True).double()
    up = SparseResBlock3d(12, 5, out_channels=4, upsample=True).double()
    randomise(down, generator)
    randomise(up, generator)

    x = SparseTensor(feats, coords).to(device)
    h = down.to(device)(x, emb.to(device))
    skip = h.feats
    out = up.to(device)(h.replace(torch.cat([h.feats, skip], dim=1)), emb.to(device))

    with torch.no_grad():
        child, pooled, rows = brute_downsample(coords, feats)
        expected_h = reference_res_block(down.cpu(), child, pooled, emb, 4)
        wide = torch.cat([expected_h, expected_h], dim=1)[rows]
        expected = reference_res_block(up.cpu(), coords, wide, emb, 8)
    # The LayerNorms compute in float32 (upstream's LayerNorm32), so float64 agrees to ~1e-6.
    assert h.coords.cpu().tolist() == child.tolist()
    torch.testing.assert_close(h.feats.cpu(), expected_h, rtol=1e-4, atol=1e-5)
    assert out.coords is x.coords
    torch.testing.assert_close(out.feats.cpu(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_subdivide_block_matches_dense_reference(device: str) -> None:
    generator = torch.Generator().manual_seed(1)
    coords = random_coords([40, 25], 4, generator)
    feats = torch.randn(len(coords), 8, generator=generator, dtype=torch.float64)
    block = SparseSubdivideBlock3d(8, 4, out_channels=4, num_groups=2).double()
    randomise(block, generator)
    out = block.to(device)(SparseTensor(feats, coords).to(device))
    with torch.no_grad():
        fine, expected = reference_subdivide_block(block.cpu(), coords, feats, 4)
    assert out.coords.cpu().tolist() == fine.tolist()
    torch.testing.assert_close(out.feats.cpu(), expected, rtol=1e-4, atol=1e-5)


def test_block_state_dict_keys() -> None:
    res = SparseResBlock3d(4, 5, out_channels=6)
    assert sorted(res.state_dict()) == sorted(
        [
            "norm1.weight",
            "norm1.bias",
            "conv1.conv.weight",
            "conv1.conv.bias",
            "conv2.conv.weight",
            "conv2.conv.bias",
            "emb_layers.1.weight",
            "emb_layers.1.bias",
            "skip_connection.weight",
            "skip_connection.bias",
        ]
    )
    assert "skip_connection.weight" not in SparseResBlock3d(4, 5).state_dict()
    sub = {k: tuple(v.shape) for k, v in SparseSubdivideBlock3d(8, 4, 4, 2).state_dict().items()}
    assert sub == {
        "act_layers.0.weight": (8,),
        "act_layers.0.bias": (8,),
        "out_layers.0.conv.weight": (4, 3, 3, 3, 8),
        "out_layers.0.conv.bias": (4,),
        "out_layers.1.weight": (4,),
        "out_layers.1.bias": (4,),
        "out_layers.3.conv.weight": (4, 3, 3, 3, 4),
        "out_layers.3.conv.bias": (4,),
        "skip_connection.conv.weight": (4, 1, 1, 1, 8),
        "skip_connection.conv.bias": (4,),
    }
    assert set(SparseLinear(3, 2).state_dict()) == {"weight", "bias"}
