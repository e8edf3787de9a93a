"""Resolution changes of sparse tensors: downsample, upsample back, subdivide.

Upstream semantics (``trellis/modules/sparse/spatial.py``):

- ``SparseDownsample(f)``: voxels merge into ``coord // f``; the output is sorted by
  ``(b, x, y, z)`` and its features are ``torch.scatter_reduce(zeros, ..., reduce="mean")`` with
  the default ``include_self=True``, which counts the zero it starts from: each output is
  sum / (n + 1), not the mean. The released weights were trained with that, so it is kept.
- ``SparseUpsample(f)``: back to the coordinates (and order) before the matching downsample,
  each voxel taking its merged voxel's features (nearest).
- ``SparseSubdivide()``: each voxel becomes its 8 children ``2 c + (i, j, k)``, parent-major,
  children in ``nonzero(ones(2, 2, 2))`` order ((0,0,0), (0,0,1), (0,1,0), ... (1,1,1)),
  features copied; nothing is pruned.

Child coordinate sets are cached on the parent's coordinate set, so a sampler reusing the same
coordinates downsamples (and subdivides) each set once.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.models.sparse.tensor import CoordinateSet, SparseTensor, batch_layout


def _pack(c: Tensor, extent: list[int]) -> Tensor:
    """(N, 4) int64 ``[b, x, y, z]`` -> (N,) row-major keys, x/y/z in [0, extent)."""
    return ((c[:, 0] * extent[0] + c[:, 1]) * extent[1] + c[:, 2]) * extent[2] + c[:, 3]


def _unpack(key: Tensor, extent: list[int]) -> Tensor:
    z = key % extent[2]
    rest = key // extent[2]
    y = rest % extent[1]
    rest = rest // extent[1]
    x = rest % extent[0]
    b = rest // extent[0]
    return torch.stack([b, x, y, z], dim=1).to(torch.int32)


def downsampled_coordinates(x: SparseTensor, factor: int) -> tuple[CoordinateSet, Tensor]:
    """The coordinate set of ``x`` at 1/factor resolution and each voxel's row in it (cached)."""
    key = f"downsample_{factor}"
    cached = x.cache.get(key)
    if cached is None:
        c = x.coords.long()
        c[:, 1:] = torch.div(c[:, 1:], factor, rounding_mode="floor")
        extent = (c[:, 1:].amax(dim=0) + 1).tolist() if len(x) else [1, 1, 1]
        codes, inverse = torch.unique(_pack(c, extent), sorted=True, return_inverse=True)
        coords = _unpack(codes, extent)
        child = CoordinateSet(coords, batch_layout(coords, x.batch_size), {})
        cached = (child, inverse)
        x.cache[key] = cached
    return cached


def downsample_features(feats: Tensor, inverse: Tensor, rows: int) -> Tensor:
    """Upstream's pooling: per output row, sum of its inputs / (count + 1) (include_self)."""
    index = inverse.unsqueeze(1).expand(-1, feats.shape[1])
    start = feats.new_zeros(rows, feats.shape[1])
    return torch.scatter_reduce(start, 0, index, feats, reduce="mean", include_self=True)


class SparseDownsample(nn.Module):
    """Merge voxels into ``coord // factor`` with upstream's sum/(n+1) pooling."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: SparseTensor) -> SparseTensor:
        child, inverse = downsampled_coordinates(x, self.factor)
        feats = downsample_features(x.feats, inverse, child.coords.shape[0])
        parent = (self.factor, x.coordinate_set(), inverse)
        return SparseTensor.on(feats, child, parents=(*x.parents, parent))


class SparseUpsample(nn.Module):
    """Return to the coordinates before the matching ``SparseDownsample`` (nearest features)."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not x.parents or x.parents[-1][0] != self.factor:
            raise ValueError(
                f"SparseUpsample({self.factor}) needs a tensor made by SparseDownsample"
                f"({self.factor}) (replace() keeps the link; a new SparseTensor loses it)"
            )
        _, parent, inverse = x.parents[-1]
        return SparseTensor.on(x.feats.index_select(0, inverse), parent, parents=x.parents[:-1])


def subdivided_coordinates(x: SparseTensor) -> CoordinateSet:
    """The 8 children of every voxel, parent-major (cached on ``x``'s coordinate set)."""
    cached = x.cache.get("subdivide")
    if cached is None:
        children = torch.nonzero(torch.ones(2, 2, 2, device=x.coords.device)).to(torch.int32)
        children = torch.cat([torch.zeros_like(children[:, :1]), children], dim=1)
        doubled = x.coords.clone()
        doubled[:, 1:] *= 2
        coords = (doubled.unsqueeze(1) + children.unsqueeze(0)).reshape(-1, 4)
        layout = tuple(slice(s.start * 8, s.stop * 8) for s in x.layout)
        cached = CoordinateSet(coords, layout, {})
        x.cache["subdivide"] = cached
    return cached


class SparseSubdivide(nn.Module):
    """Replace every voxel by its 8 children at twice the resolution, features copied."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        child = subdivided_coordinates(x)
        feats = x.feats.unsqueeze(1).expand(-1, 8, *x.feats.shape[1:]).flatten(0, 1)
        return SparseTensor.on(feats, child)
