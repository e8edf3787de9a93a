"""Sparse attention (full varlen, cross, swin windows) against naive softmax attention."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from torch import Tensor

from backend.models.sparse.attention import (
    SparseTokens,
    build_window_buckets,
    sparse_cross_attention,
    sparse_full_attention,
    sparse_windowed_attention,
    window_buckets,
)
from backend.models.sparse.tensor import SparseTensor
from tests.backend.models.sparse.reference import DEVICES, random_coords


def naive_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """q (Lq, H, D), k/v (Lk, H, D) -> (Lq, H, Dv), softmax(q k^T / sqrt(D)) v per head."""
    scores = torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("hqk,khd->qhd", scores.softmax(dim=-1), v)


def random_heads(n: int, generator: torch.Generator, heads: int = 2, dim: int = 8) -> Tensor:
    return torch.randn(n, heads, dim, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_full_attention_stays_inside_each_sample(device: str) -> None:
    generator = torch.Generator().manual_seed(0)
    coords = random_coords([37, 1, 20], 6, generator)
    q, k, v = (random_heads(len(coords), generator) for _ in range(3))
    x = SparseTensor(q, coords).to(device)
    out = sparse_full_attention(x, x.replace(k.to(device)), x.replace(v.to(device)))
    expected = torch.cat([naive_attention(q[s], k[s], v[s]) for s in x.layout])
    torch.testing.assert_close(out.feats.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_cross_attention_uses_each_samples_context(device: str) -> None:
    generator = torch.Generator().manual_seed(1)
    coords = random_coords([15, 25], 5, generator)
    q = random_heads(len(coords), generator)
    k = torch.randn(2, 11, 2, 8, generator=generator, dtype=torch.float64)
    v = torch.randn(2, 11, 2, 8, generator=generator, dtype=torch.float64)
    x = SparseTensor(q, coords).to(device)
    out = sparse_cross_attention(x, k.to(device), v.to(device))
    expected = torch.cat([naive_attention(q[s], k[b], v[b]) for b, s in enumerate(x.layout)])
    torch.testing.assert_close(out.feats.cpu(), expected)


def naive_windowed(
    coords: Tensor, q: Tensor, k: Tensor, v: Tensor, size: int, shift: int
) -> Tensor:
    windows: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (b, x, y, z) in enumerate(coords.tolist()):
        windows[(b, (x + shift) // size, (y + shift) // size, (z + shift) // size)].append(i)
    out = torch.empty_like(v)
    for rows in windows.values():
        out[rows] = naive_attention(q[rows], k[rows], v[rows])
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("size", "shift"), [(8, 0), (8, 4), (3, 1), (2, 0)])
def test_windowed_attention_matches_per_window_attention(
    device: str, size: int, shift: int
) -> None:
    generator = torch.Generator().manual_seed(2)
    coords = random_coords([400, 150], 12, generator)
    qkv = torch.randn(len(coords), 3, 2, 8, generator=generator, dtype=torch.float64)
    x = SparseTensor(qkv, coords).to(device)
    out = sparse_windowed_attention(x, size, shift)
    expected = naive_windowed(coords, *qkv.unbind(1), size, shift)
    torch.testing.assert_close(out.feats.cpu(), expected)


def test_window_buckets_cover_every_voxel_once_and_are_cached() -> None:
    generator = torch.Generator().manual_seed(3)
    coords = random_coords([300], 10, generator)
    buckets = build_window_buckets(coords, 4, 2)
    rows = torch.cat([b.targets for b in buckets])
    assert sorted(rows.tolist()) == list(range(len(coords)))
    assert all(b.rows.shape[1] & (b.rows.shape[1] - 1) == 0 for b in buckets)  # powers of two
    x = SparseTensor(torch.zeros(len(coords), 1), coords)
    assert window_buckets(x, 4, 2) is window_buckets(x.replace(x.feats + 1), 4, 2)
    assert window_buckets(x, 4, 2) is not window_buckets(x, 4, 0)


def test_sparse_tokens_broadcast_per_sample() -> None:
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.int32)
    tokens = SparseTokens(SparseTensor(torch.zeros(3, 2), coords))
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert tokens.per_sample(values).tolist() == [[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]
    single = SparseTokens(SparseTensor(torch.zeros(2, 2), coords[:2]))
    assert single.per_sample(values[:1]).tolist() == [1.0, 2.0]
