"""The sparse voxel tensor every sparse op takes and returns.

A ``SparseTensor`` is a batch of voxel sets: ``coords`` (N, 4) int32 rows ``[batch, x, y, z]``,
sorted by batch (upstream's convention: each batch element's voxels are contiguous), and
``feats`` (N, ...) with one row per voxel. ``layout[b]`` is the slice of rows of batch element b.

``cache`` is a dict shared by every tensor on the same coordinate set (``replace`` keeps it): the
neighbour maps of the convolutions, the swin window partitions, and the child coordinate sets of
downsample / subdivide live there, so they are built once per coordinate set and reused by every
layer and every sampler step that keeps the coordinates: ``x.replace(new_feats)`` keeps it, and
a new ``SparseTensor`` made on the very same (unmodified) ``coords`` tensor finds it again
(caches are remembered per coords tensor, weakly, and dropped if the tensor is changed in
place or freed). A tensor made by downsampling carries its
parent on a stack (``parents``: factor, parent coordinate set, parent row -> child row) so that
upsampling returns to the parent's coordinates, order and cache; a cache holds only its children's
caches, never a way back, so caches form no reference cycles (GPU memory is freed as soon as the
tensors go).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class CoordinateSet:
    """One coordinate set with its layout and cache, as a cache entry or a parent link."""

    coords: Tensor
    layout: tuple[slice, ...]
    cache: dict[str, Any]


# (factor, the coordinate set before downsampling, (N_parent,) int64 row in the child).
Parent = tuple[int, CoordinateSet, Tensor]

# id(coords) -> (weak ref to coords, its in-place version, layout, cache): tensors built on
# the same coords tensor share one cache. Keyed by id because tensors compare elementwise.
_KNOWN: dict[int, tuple[weakref.ref, int, tuple[slice, ...], dict[str, Any]]] = {}


def _known_coordinates(coords: Tensor, batch_size: int | None) -> tuple[tuple[slice, ...], dict]:
    """The layout and cache of ``coords``, remembered from an earlier tensor when valid."""
    entry = _KNOWN.get(id(coords))
    if entry is not None:
        ref, version, layout, cache = entry
        same = ref() is coords and version == coords._version
        if same and (batch_size is None or batch_size == len(layout)):
            return layout, cache
    layout, cache = batch_layout(coords, batch_size), {}
    if entry is None:
        weakref.finalize(coords, _KNOWN.pop, id(coords), None)
    _KNOWN[id(coords)] = (weakref.ref(coords), coords._version, layout, cache)
    return layout, cache


class SparseTensor:
    """Features on a batch of voxel sets; coords (N, 4) int32 ``[batch, x, y, z]``, batch-sorted."""

    def __init__(
        self,
        feats: Tensor,
        coords: Tensor,
        *,
        batch_size: int | None = None,
        layout: tuple[slice, ...] | None = None,
        cache: dict[str, Any] | None = None,
        parents: tuple[Parent, ...] = (),
    ) -> None:
        if coords.dim() != 2 or coords.shape[1] != 4 or coords.dtype != torch.int32:
            raise ValueError(
                f"coords must be (N, 4) int32, got {tuple(coords.shape)} {coords.dtype}"
            )
        if feats.shape[0] != coords.shape[0]:
            raise ValueError(f"{feats.shape[0]} feature rows for {coords.shape[0]} voxels")
        self.feats = feats
        self.coords = coords
        if layout is None and cache is None:
            layout, cache = _known_coordinates(coords, batch_size)
        self.layout = layout if layout is not None else batch_layout(coords, batch_size)
        self.cache = cache if cache is not None else {}
        self.parents = parents

    @property
    def batch_size(self) -> int:
        return len(self.layout)

    @property
    def device(self) -> torch.device:
        return self.feats.device

    @property
    def dtype(self) -> torch.dtype:
        return self.feats.dtype

    def __len__(self) -> int:
        return self.coords.shape[0]

    def __repr__(self) -> str:
        return (
            f"SparseTensor(voxels={len(self)}, batch_size={self.batch_size}, "
            f"feats={tuple(self.feats.shape)} {self.feats.dtype}, device={self.device})"
        )

    def replace(self, feats: Tensor) -> SparseTensor:
        """The same coordinates (and cache) with new features (N, ...)."""
        return SparseTensor(
            feats, self.coords, layout=self.layout, cache=self.cache, parents=self.parents
        )

    def to(self, device: torch.device | str) -> SparseTensor:
        """A copy on ``device``; the cache starts empty there (its maps live on the old device)."""
        return SparseTensor(
            self.feats.to(device), self.coords.to(device), batch_size=self.batch_size
        )

    def coordinate_set(self) -> CoordinateSet:
        return CoordinateSet(self.coords, self.layout, self.cache)

    @classmethod
    def on(cls, feats: Tensor, coordinate_set: CoordinateSet, **kwargs: Any) -> SparseTensor:
        """Features placed on a known coordinate set (its layout and cache reused)."""
        return cls(
            feats,
            coordinate_set.coords,
            layout=coordinate_set.layout,
            cache=coordinate_set.cache,
            **kwargs,
        )

    def batch_index(self) -> Tensor:
        """(N,) int64 batch element of each voxel (cached)."""
        index = self.cache.get("batch_index")
        if index is None:
            index = self.coords[:, 0].long()
            self.cache["batch_index"] = index
        return index

    def per_sample(self, values: Tensor) -> Tensor:
        """(B, ...) values broadcast to this tensor's rows: (...) for one sample, else (N, ...)."""
        if values.shape[0] != self.batch_size:
            raise ValueError(f"{values.shape[0]} values for a batch of {self.batch_size}")
        if self.batch_size == 1:
            return values[0]
        return values.index_select(0, self.batch_index())


def batch_layout(coords: Tensor, batch_size: int | None = None) -> tuple[slice, ...]:
    """Row slices of each batch element; coords must be sorted by their batch column."""
    batch = coords[:, 0]
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("coords must be sorted by batch index (each sample's voxels contiguous)")
    if batch.numel() and int(batch[0]) < 0:
        raise ValueError("negative batch index")
    if batch_size is None:
        if batch.numel() == 0:
            raise ValueError("an empty SparseTensor needs an explicit batch_size")
        batch_size = int(batch[-1]) + 1
    counts = torch.bincount(batch.long(), minlength=batch_size)
    if counts.numel() > batch_size:
        raise ValueError(f"batch index {counts.numel() - 1} outside a batch of {batch_size}")
    ends = torch.cumsum(counts, 0).tolist()
    starts = [0, *ends[:-1]]
    return tuple(slice(s, e) for s, e in zip(starts, ends, strict=True))


def sparse_cat(*tensors: SparseTensor) -> SparseTensor:
    """Concatenate features of tensors on the same coordinates along the channel axis."""
    first = tensors[0]
    for other in tensors[1:]:
        same = other.coords is first.coords or (
            other.coords.shape == first.coords.shape and torch.equal(other.coords, first.coords)
        )
        if not same:
            raise ValueError("sparse_cat needs tensors on the same coordinates")
    return first.replace(torch.cat([t.feats for t in tensors], dim=1))
