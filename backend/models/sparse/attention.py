"""Attention over sparse tokens on ``scaled_dot_product_attention``: full varlen, cross, swin.

Tokens are rows of (N, H, D) tensors; a ``SparseTensor``'s layout says which rows belong to which
batch element. Upstream runs these through flash-attn / xformers varlen kernels; the maths is
plain softmax attention with scale 1/sqrt(D) inside each sequence, so here:

- full self attention: one SDPA per batch element over all its voxels;
- cross attention: each element's voxels attend to that element's dense context (B, L, H, D);
- windowed (swin) self attention, upstream's ``calc_window_partition``: a voxel's window is
  ``(coord + shift) // window_size`` per axis (per batch element; no roll, no mask, no
  relative bias), attention runs inside each window. Windows are bucketed by length (next power
  of two), padded, and run as one SDPA per bucket with a key-padding mask; padded query rows
  see at least their window's first token, so they stay finite, and are dropped.

Window partitions are cached on the tensor's coordinate set per (window size, shift).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from backend.models.sparse.tensor import SparseTensor


def token_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Tokens-first SDPA: q (..., Lq, H, D), k/v (..., Lk, H, D) -> (..., Lq, H, Dv)."""
    out = F.scaled_dot_product_attention(
        q.transpose(-3, -2), k.transpose(-3, -2), v.transpose(-3, -2), attn_mask=mask
    )
    return out.transpose(-3, -2)


def full_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_layout: tuple[slice, ...],
    kv_layout: tuple[slice, ...],
) -> Tensor:
    """Per-element attention of rows ``q[q_layout[b]]`` to ``k/v[kv_layout[b]]``: (Nq, H, Dv)."""
    if len(q_layout) == 1:
        return token_attention(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0))[0]
    parts = [
        token_attention(q[qs].unsqueeze(0), k[ks].unsqueeze(0), v[ks].unsqueeze(0))[0]
        for qs, ks in zip(q_layout, kv_layout, strict=True)
    ]
    return torch.cat(parts, dim=0)


def cross_attention(q: Tensor, k: Tensor, v: Tensor, q_layout: tuple[slice, ...]) -> Tensor:
    """Rows of element b (q (N, H, D)) attend to its dense context k/v (B, L, H, D)."""
    if len(q_layout) == 1:
        return token_attention(q.unsqueeze(0), k[:1], v[:1])[0]
    parts = [
        token_attention(q[rows].unsqueeze(0), k[b : b + 1], v[b : b + 1])[0]
        for b, rows in enumerate(q_layout)
    ]
    return torch.cat(parts, dim=0)


@dataclass(frozen=True, eq=False)
class WindowBucket:
    """Windows padded to one length L: token rows (W, L), key mask, and where results go.

    ``mask`` (W, 1, 1, L) marks real tokens (None when every window is full); ``kept`` are
    the flat (W L) positions of real tokens and ``targets`` their rows, so results scatter back
    without a data-dependent (synchronising) boolean index at run time.
    """

    rows: Tensor
    mask: Tensor | None
    kept: Tensor | None
    targets: Tensor


def window_ids(coords: Tensor, window_size: int, shift: int) -> Tensor:
    """(N,) int64 id of each voxel's window, batch-major then x, y, z (upstream's numbering)."""
    shifted = coords[:, 1:].long() + shift
    counts = (torch.div(shifted.amax(dim=0), window_size, rounding_mode="floor") + 1).tolist()
    wx, wy, wz = torch.div(shifted, window_size, rounding_mode="floor").unbind(dim=1)
    batch = coords[:, 0].long()
    return ((batch * counts[0] + wx) * counts[1] + wy) * counts[2] + wz


def build_window_buckets(coords: Tensor, window_size: int, shift: int) -> list[WindowBucket]:
    """Group voxels by swin window; windows of like length padded together (powers of two)."""
    if coords.shape[0] == 0:
        return []
    ids = window_ids(coords, window_size, shift)
    order = torch.argsort(ids, stable=True)
    _, lengths = torch.unique_consecutive(ids[order], return_counts=True)
    starts = torch.cumsum(lengths, 0) - lengths
    padded_lengths = torch.pow(2, torch.ceil(torch.log2(lengths.double()))).long()
    buckets = []
    for size in torch.unique(padded_lengths).tolist():
        chosen = padded_lengths == size
        window_lengths = lengths[chosen]
        position = torch.arange(size, device=coords.device)
        valid = position.unsqueeze(0) < window_lengths.unsqueeze(1)
        # A padding slot repeats its window's first token: every padded row stays in range.
        offset = torch.where(valid, position.unsqueeze(0), 0)
        rows = order[starts[chosen].unsqueeze(1) + offset]
        if bool(valid.all()):
            buckets.append(WindowBucket(rows, None, None, rows.reshape(-1)))
        else:
            kept = valid.reshape(-1).nonzero().squeeze(1)
            mask = valid[:, None, None, :]
            buckets.append(WindowBucket(rows, mask, kept, rows.reshape(-1)[kept]))
    return buckets


def window_buckets(x: SparseTensor, window_size: int, shift: int) -> list[WindowBucket]:
    """The swin partition of ``x``'s coordinates, built once per coordinate set."""
    key = f"window_{window_size}_{shift}"
    buckets = x.cache.get(key)
    if buckets is None:
        buckets = build_window_buckets(x.coords, window_size, shift)
        x.cache[key] = buckets
    return buckets


def windowed_attention(q: Tensor, k: Tensor, v: Tensor, buckets: list[WindowBucket]) -> Tensor:
    """Self attention of rows (N, H, D) inside each window of ``buckets`` -> (N, H, Dv)."""
    out = q.new_empty(q.shape[0], q.shape[1], v.shape[2])
    for bucket in buckets:
        rows = bucket.rows
        result = token_attention(q[rows], k[rows], v[rows], bucket.mask)
        result = result.reshape(-1, *result.shape[2:])
        if bucket.kept is not None:
            result = result.index_select(0, bucket.kept)
        out.index_copy_(0, bucket.targets, result)
    return out


def sparse_full_attention(q: SparseTensor, k: SparseTensor, v: SparseTensor) -> SparseTensor:
    """Full attention within each batch element; feats (N, H, D) -> (Nq, H, Dv) on q's coords."""
    return q.replace(full_attention(q.feats, k.feats, v.feats, q.layout, k.layout))


def sparse_cross_attention(q: SparseTensor, k: Tensor, v: Tensor) -> SparseTensor:
    """Sparse queries (N, H, D) to dense per-element keys/values (B, L, H, D)."""
    return q.replace(cross_attention(q.feats, k, v, q.layout))


def sparse_windowed_attention(qkv: SparseTensor, window_size: int, shift: int = 0) -> SparseTensor:
    """Swin self attention; qkv feats (N, 3, H, D) -> (N, H, D) (upstream's packed form)."""
    q, k, v = qkv.feats.unbind(dim=1)
    return qkv.replace(windowed_attention(q, k, v, window_buckets(qkv, window_size, shift)))


class SparseTokens:
    """The token layout of a ``SparseTensor`` for the shared transformer blocks.

    Blocks see features (N, C) and ask the layout for what depends on it: per-sample values
    broadcast to tokens, self attention (full or a (window_size, shift) swin window) and cross
    attention to a dense context. ``DenseTokens`` in ``backend.models.trellis.transformer`` is
    the same interface over (B, L, C) tokens.
    """

    def __init__(self, x: SparseTensor) -> None:
        self.x = x

    def per_sample(self, values: Tensor) -> Tensor:
        return self.x.per_sample(values)

    def self_attention(
        self, q: Tensor, k: Tensor, v: Tensor, window: tuple[int, int] | None = None
    ) -> Tensor:
        if window is None:
            return full_attention(q, k, v, self.x.layout, self.x.layout)
        return windowed_attention(q, k, v, window_buckets(self.x, *window))

    def cross_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return cross_attention(q, k, v, self.x.layout)
