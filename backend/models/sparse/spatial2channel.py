"""Spatial2Channel / Channel2Spatial: TRELLIS.2's lossless 2x resampling of sparse tensors.

Upstream: ``trellis2/modules/sparse/spatial/spatial2channel.py``. A child voxel ``c`` of parent
``c // 2`` has sub-index ``s = (c_x % 2) + 2 (c_y % 2) + 4 (c_z % 2)``.

- ``spatial_to_channel``: parents are the unique ``c // 2`` (sorted by ``(b, x, y, z)``); a
  parent's features are its 8 children's features laid side by side, slot ``s`` holding child
  ``s`` (zeros for an absent child): (N, C) -> (P, 8 C).
- ``channel_to_spatial``: slot ``s`` of a parent's (8 C') features becomes child ``s``'s
  C' features. The children are those of the downsampling it undoes (same order), or, going
  up from a latent, those a boolean (P, 8) subdivision mask names, parent by parent in
  increasing ``s``.

The pairing is kept in the cache: a tensor made by ``spatial_to_channel`` remembers its
children's coordinate set, and ``channel_to_spatial`` returns to it (with its cache).
"""

from __future__ import annotations

import torch
from torch import Tensor

from backend.models.sparse.tensor import SparseTensor

SUBVOXELS = 8
_CHILDREN = "channel2spatial_children"  # cache key: (children's coordinate set, idx, subidx)
_SUBDIVIDED = "channel2spatial_subdivided"  # (mask, children's coordinate set, idx, subidx)


def _sub_index(coords: Tensor) -> Tensor:
    local = (coords[:, 1:] % 2).long()
    return local[:, 0] + 2 * local[:, 1] + 4 * local[:, 2]


def spatial_to_channel(x: SparseTensor) -> SparseTensor:
    """(N, C) children -> (P, 8 C) parents at half the resolution (sorted by b, x, y, z)."""
    key = "spatial2channel"
    cached = x.cache.get(key)
    if cached is None:
        halves = x.coords.long().clone()
        halves[:, 1:] //= 2
        span = int(halves[:, 1:].max()) + 1 if len(halves) else 1
        code = ((halves[:, 0] * span + halves[:, 1]) * span + halves[:, 2]) * span + halves[:, 3]
        unique, idx = torch.unique(code, return_inverse=True)
        parents = torch.stack(
            [unique // span**3, unique // span**2 % span, unique // span % span, unique % span],
            dim=1,
        ).int()
        cached = (parents, idx, _sub_index(x.coords))
        x.cache[key] = cached
    parents, idx, subidx = cached
    feats = x.feats.new_zeros(len(parents) * SUBVOXELS, x.feats.shape[1])
    feats[idx * SUBVOXELS + subidx] = x.feats
    out = SparseTensor(feats.reshape(len(parents), -1), parents, batch_size=x.batch_size)
    out.cache.setdefault(_CHILDREN, (x.coordinate_set(), idx, subidx))
    return out


def channel_to_spatial(x: SparseTensor, subdivision: Tensor | None = None) -> SparseTensor:
    """(P, 8 C') parents -> (M, C') children: those of the downsampling this undoes, else the
    ones ``subdivision`` (P, 8) bool marks."""
    cached = x.cache.get(_CHILDREN)
    if cached is not None:
        children, idx, subidx = cached
        feats = x.feats.reshape(len(x) * SUBVOXELS, -1)[idx * SUBVOXELS + subidx]
        return SparseTensor.on(feats, children)
    if subdivision is None:
        raise ValueError("channel_to_spatial needs a subdivision mask or a paired downsampling")
    # A block upsamples its main and skip paths with one mask: build the children once.
    built = x.cache.get(_SUBDIVIDED)
    if built is None or built[0] is not subdivision:
        leaves = subdivision.sum(dim=1)
        subidx = subdivision.nonzero()[:, 1]
        idx = torch.repeat_interleave(torch.arange(len(x), device=x.device), leaves)
        coords = x.coords[idx].clone()
        coords[:, 1:] *= 2
        for axis in range(3):
            coords[:, axis + 1] += (subidx // 2**axis % 2).int()
        children = SparseTensor(coords.new_zeros(len(coords), 0), coords, batch_size=x.batch_size)
        built = (subdivision, children.coordinate_set(), idx, subidx)
        x.cache[_SUBDIVIDED] = built
    _mask, children_set, idx, subidx = built
    feats = x.feats.reshape(len(x) * SUBVOXELS, -1)[idx * SUBVOXELS + subidx]
    return SparseTensor.on(feats, children_set)
