"""Float32 norms: per-sample GroupNorm over voxels, per-voxel LayerNorm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backend.models.sparse.norm import LayerNorm32, SparseGroupNorm32
from backend.models.sparse.tensor import SparseTensor
from tests.backend.models.sparse.reference import DEVICES, random_coords


@pytest.mark.parametrize("device", DEVICES)
def test_group_norm_normalises_each_sample_over_its_voxels(device: str) -> None:
    generator = torch.Generator().manual_seed(0)
    coords = random_coords([50, 30], 6, generator)
    feats = torch.randn(len(coords), 8, generator=generator) * 3 + 1
    norm = SparseGroupNorm32(4, 8)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8, generator=generator))
        norm.bias.copy_(torch.randn(8, generator=generator))
    x = SparseTensor(feats, coords)
    out = norm.to(device)(x.to(device))
    reference = nn.GroupNorm(4, 8)
    reference.load_state_dict(norm.state_dict())
    reference = reference.cpu()
    expected = torch.cat([reference(feats[s].t()[None])[0].t() for s in x.layout])
    torch.testing.assert_close(out.feats.cpu(), expected, rtol=1e-5, atol=1e-5)


def test_half_inputs_are_normalised_in_float32() -> None:
    generator = torch.Generator().manual_seed(1)
    feats = (torch.randn(40, 8, generator=generator) * 100 + 5000).half()
    coords = random_coords([40], 5, generator)
    out = SparseGroupNorm32(2, 8)(SparseTensor(feats, coords))
    expected = nn.GroupNorm(2, 8)(feats.float().t()[None])[0].t()
    assert out.feats.dtype == torch.float16
    torch.testing.assert_close(out.feats.float(), expected.half().float())
    layer = LayerNorm32(8, eps=1e-6)
    half = layer(feats)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), layer(feats.float()).half().float())
