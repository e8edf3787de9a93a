"""Rotary position embedding (RoPE) over 3D voxel positions, TRELLIS.2's convention.

Upstream (``trellis2/modules/attention/rope.py``, ``modules/sparse/attention/rope.py``) rotates
each head's (q, k) as complex pairs of *adjacent* channels ``(2i, 2i + 1)``:

- per axis ``freq_dim = head_dim // 2 // 3`` frequencies ``f_j = 1 / 10000^(j / freq_dim)``;
- a position (x, y, z) has phases ``[x f | y f | z f]`` (axes concatenated), padded with phase
  0 (no rotation) up to ``head_dim // 2`` pairs (head 128: 3 x 21 = 63 pairs, one left as is);
- applied after the per-head RMS norm, in float32, cast back to the input dtype.

Dense grids (the structure flow) precompute the phases of every grid cell; sparse tensors cache
them on their coordinate set, so every block of a network reuses one table.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backend.models.sparse.tensor import SparseTensor

ROPE_FREQ = (1.0, 10000.0)


def rope_phases(positions: Tensor, head_dim: int, freq: tuple[float, float] = ROPE_FREQ) -> Tensor:
    """(N, 3) integer positions -> (N, head_dim // 2) complex64 unit phases."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
    axes = positions.shape[-1]
    freq_dim = head_dim // 2 // axes
    exponents = torch.arange(freq_dim, dtype=torch.float32, device=positions.device) / freq_dim
    freqs = freq[0] / (freq[1] ** exponents)
    angles = torch.outer(positions.reshape(-1).float(), freqs).reshape(positions.shape[0], -1)
    padding = head_dim // 2 - angles.shape[1]
    if padding:
        angles = torch.cat([angles, angles.new_zeros(angles.shape[0], padding)], dim=1)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: Tensor, phases: Tensor) -> Tensor:
    """Rotate (..., L, H, D) queries or keys by phases (L, D // 2) (broadcast over heads)."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    rotated = torch.view_as_real(pairs * phases.unsqueeze(-2))
    return rotated.reshape(x.shape).to(x.dtype)


def sparse_rope_phases(x: SparseTensor, head_dim: int) -> Tensor:
    """The phases of ``x``'s voxel positions (N, head_dim // 2), cached on its coordinates."""
    key = f"rope_{head_dim}"
    phases = x.cache.get(key)
    if phases is None:
        phases = rope_phases(x.coords[:, 1:], head_dim)
        x.cache[key] = phases
    return phases
