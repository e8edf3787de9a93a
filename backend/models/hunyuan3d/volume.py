"""Occupancy volume decoding and surface extraction for the Hunyuan3D-2 ShapeVAE.

Two ways to fill the (r+1)^3 grid of occupancy logits over the box [-bounds, bounds]^3:

- :func:`decode_dense` queries every grid point, in chunks, generating the points on the
  device from their linear index (no multi-GB host grid) and reusing the shape's prepared keys
  and values for every chunk.
- :func:`decode_hierarchical` (the octree decode) queries a coarse grid, then at
  each finer level only the points near the coarse surface (sign changes, |logit| < 0.95,
  dilated), as upstream's hierarchical decoder does; the points it skips take the upsampled
  coarse logits instead of NaN, so marching cubes sees no holes or stray faces there. Its
  per-level steps (:func:`refine_mask` / :func:`refine_points`, :func:`upsample`) also serve
  :mod:`flashvdm`. Memory: the fine levels keep one float32 grid and one bool mask of the finest
  size, listing the points to query a slab at a time (:func:`query_masked`), so the peak above
  the weights is those ~5 bytes a grid point plus one chunk of the decoder.

:func:`extract_surface` runs marching cubes (scikit-image, Lewiner) and maps vertices back
into the box with upstream's convention (divide by r+1, not r), so meshes match hy3dgen's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from skimage import measure
from torch import Tensor

# logits below this magnitude count as "near the surface" when refining (upstream's value).
NEAR_SURFACE_LOGIT = 0.95

QueryFn = Callable[[Tensor], Tensor]  # points (1, p, 3) -> logits (1, p)
ChunkFn = Callable[[int, int], None]  # (chunks done, chunks total) after each chunk


@dataclass(frozen=True)
class Box:
    """The cube [-bound, bound]^3 sampled at ``resolution`` cells per side."""

    bound: float
    resolution: int

    @property
    def size(self) -> int:
        return self.resolution + 1


def grid_axis(box: Box, device: torch.device | str) -> Tensor:
    """(r+1,) float32 coordinates of one axis: float64 linspace rounded once (as numpy)."""
    return torch.linspace(-box.bound, box.bound, box.size, dtype=torch.float64).to(
        device=device, dtype=torch.float32
    )


def decode_dense(
    query: QueryFn,
    box: Box,
    chunk: int,
    device: torch.device | str,
    dtype: torch.dtype,
    on_chunk: ChunkFn | None = None,
) -> Tensor:
    """Every grid point -> logits (r+1, r+1, r+1) float32, x along axis 0 ("ij" indexing)."""
    axis = grid_axis(box, device)
    n = box.size
    total = -(-(n**3) // chunk)
    logits = torch.empty(n**3, dtype=torch.float32, device=device)
    for index, start in enumerate(range(0, n**3, chunk)):
        flat = torch.arange(start, min(start + chunk, n**3), device=device)
        points = torch.stack((axis[flat // (n * n)], axis[(flat // n) % n], axis[flat % n]), -1)
        logits[start : start + len(flat)] = query(points[None].to(dtype))[0].float()
        if on_chunk is not None:
            on_chunk(index + 1, total)
    return logits.view(n, n, n)


def level_resolutions(resolution: int, min_resolution: int = 63) -> list[int]:
    """Coarse-to-fine resolutions, halving from ``resolution`` while >= ``min_resolution``."""
    levels = [resolution] if resolution < min_resolution else []
    while resolution >= min_resolution:
        levels.append(resolution)
        resolution //= 2
    return levels[::-1]


def flashvdm_resolutions(
    resolution: int, mini_grid_num: int = 4, min_resolution: int = 63
) -> list[int]:
    """FlashVDM's levels: the coarsest snapped to k*mini_grid_num - 1, the rest doubling it."""
    levels = level_resolutions(resolution, min_resolution)
    first = round(levels[0] / mini_grid_num) * mini_grid_num - 1
    return [first * 2**i for i in range(len(levels))]


def near_surface(logits: Tensor, level: float, valid: Tensor | None = None) -> Tensor:
    """(n, n, n) bool: valid points whose sign differs from a valid 6-neighbour's, or with
    small |logit|. Invalid (never queried) neighbours count as same-signed, as upstream."""
    value = logits + level
    if valid is None:
        valid = torch.ones_like(value, dtype=torch.bool)
    padded = F.pad(value[None, None], (1, 1, 1, 1, 1, 1), mode="replicate")[0, 0]
    padded_valid = F.pad(valid[None, None].float(), (1, 1, 1, 1, 1, 1), mode="replicate")[0, 0]
    sign = torch.sign(value)
    n = value.shape[0]
    changed = torch.zeros_like(valid)
    for axis in range(3):
        for offset in (0, 2):
            index = [slice(1, n + 1)] * 3
            index[axis] = slice(offset, offset + n)
            neighbour = torch.where(padded_valid[tuple(index)] > 0, padded[tuple(index)], value)
            changed |= torch.sign(neighbour) != sign
    return (changed | (logits.abs() < NEAR_SURFACE_LOGIT)) & valid


def _dilate(mask: Tensor) -> Tensor:
    """3x3x3 binary dilation of a bool volume, one axis at a time (a box is separable), in
    bool: the float max-pool it replaces held two 4-byte copies of the finest grid."""
    for axis in range(3):
        grown = mask.clone()
        grown.narrow(axis, 1, mask.shape[axis] - 1).logical_or_(
            mask.narrow(axis, 0, mask.shape[axis] - 1)
        )
        grown.narrow(axis, 0, mask.shape[axis] - 1).logical_or_(
            mask.narrow(axis, 1, mask.shape[axis] - 1)
        )
        mask = grown
    return mask


def refine_mask(
    logits: Tensor, valid: Tensor, fine_box: Box, mc_level: float, last: bool
) -> Tensor:
    """(r+1,)^3 bool over the fine grid: the points to query after a coarse level.

    The near-surface coarse points (dilated once except before the last level) seed the even
    points of the fine grid, dilated to their 3x3x3 neighbourhoods, as in upstream's
    hierarchical decoder.
    """
    seeds = near_surface(logits, mc_level, valid)
    if not last:
        seeds = _dilate(seeds)
    fine = torch.zeros((fine_box.size,) * 3, dtype=torch.bool, device=logits.device)
    even = fine[::2, ::2, ::2]  # coarse point i sits on fine point 2i
    m = even.shape[0]
    even.copy_(seeds[:m, :m, :m])
    del seeds, even
    for _ in range(1 if not last else 2):
        fine = _dilate(fine)
    return fine


def refine_points(
    logits: Tensor, valid: Tensor, fine_box: Box, mc_level: float, last: bool
) -> Tensor:
    """The fine-level grid points (q, 3) int64 ("ij" order) of :func:`refine_mask`."""
    return torch.nonzero(refine_mask(logits, valid, fine_box, mc_level, last))


def grid_points(chosen: Tensor, box: Box) -> Tensor:
    """Grid indices (q, 3) int64 -> their float32 coordinates (q, 3), as upstream computes them."""
    return chosen.to(torch.float32) * (2 * box.bound / box.resolution) - box.bound


def upsample(logits: Tensor, fine_box: Box) -> Tensor:
    """The coarse logits trilinearly upsampled to the fine grid (r+1,)^3 float32."""
    return F.interpolate(
        logits[None, None], size=(fine_box.size,) * 3, mode="trilinear", align_corners=True
    )[0, 0]


def fill_level(logits: Tensor, fine_box: Box, chosen: Tensor, values: Tensor) -> Tensor:
    """The coarse logits upsampled to the fine grid (r+1,)^3, with the queried ``values`` (q,)
    at ``chosen`` (q, 3): skipped points get interpolated logits instead of NaN."""
    upsampled = upsample(logits, fine_box)
    upsampled[chosen[:, 0], chosen[:, 1], chosen[:, 2]] = values
    return upsampled


# Grid points whose indices one torch.nonzero call lists at most (about, in whole planes):
# bounds the index buffer (24 bytes a point) while keeping the host syncs nonzero makes few.
SLAB_POINTS = 1 << 20


def query_masked(
    query: QueryFn,
    mask: Tensor,
    box: Box,
    out: Tensor,
    chunk: int,
    dtype: torch.dtype,
    on_chunk: ChunkFn | None = None,
) -> int:
    """Query the grid points where ``mask`` (r+1,)^3 is True and write their logits into
    ``out`` (same shape, float32) -> the number of points queried.

    Points go in "ij" order and in chunks of ``chunk``, exactly the chunks of querying
    ``torch.nonzero(mask)`` at once, but the index list is built a slab of planes at a time:
    the whole list (24 bytes a point, tens of millions of points near a 385^3 surface) and its
    float copies held more memory than the decoder itself.
    """
    n = mask.shape[0]
    total = -(-int(mask.sum()) // chunk)
    planes = max(1, SLAB_POINTS // (mask[0].numel() or 1))
    pending: deque[Tensor] = deque()  # index rows not yet queried, in order
    held = done = queried = 0

    def flush(count: int) -> None:
        nonlocal held, done, queried
        parts, need = [], count
        while need:
            head = pending.popleft()
            if len(head) > need:
                pending.appendleft(head[need:])
                head = head[:need]
            parts.append(head)
            need -= len(head)
        take = torch.cat(parts) if len(parts) > 1 else parts[0]
        held -= count
        values = query(grid_points(take, box).to(dtype)[None])[0]
        out[take[:, 0], take[:, 1], take[:, 2]] = values.float()
        done, queried = done + 1, queried + count
        if on_chunk is not None:
            on_chunk(done, total)

    for start in range(0, n, planes):
        if pending:  # a leftover (< chunk rows) would keep its whole slab's buffer alive
            pending[0] = pending[0].clone()
        index = torch.nonzero(mask[start : start + planes])
        if len(index) == 0:
            continue
        index[:, 0] += start
        pending.append(index)
        held += len(index)
        while held >= chunk:
            flush(chunk)
    if held:
        flush(held)
    return queried


def queried_mask(chosen: Tensor, box: Box) -> Tensor:
    """(r+1,)^3 bool, True at the grid indices ``chosen`` (q, 3)."""
    mask = torch.zeros((box.size,) * 3, dtype=torch.bool, device=chosen.device)
    mask[chosen[:, 0], chosen[:, 1], chosen[:, 2]] = True
    return mask


def decode_hierarchical(
    query: QueryFn,
    box: Box,
    chunk: int,
    device: torch.device | str,
    dtype: torch.dtype,
    mc_level: float = 0.0,
    levels: list[int] | None = None,
    on_chunk: ChunkFn | None = None,
) -> tuple[Tensor, Box]:
    """Octree decode -> (logits (r+1,)^3 float32, the finest box), r = the last level.

    A dense coarse level, then at each finer level only :func:`refine_mask` is queried.
    """
    levels = levels or level_resolutions(box.resolution)
    logits = decode_dense(query, Box(box.bound, levels[0]), chunk, device, dtype, on_chunk=None)
    valid = torch.ones_like(logits, dtype=torch.bool)
    for depth, resolution in enumerate(levels[1:], start=1):
        fine_box = Box(box.bound, resolution)
        valid = refine_mask(logits, valid, fine_box, mc_level, depth == len(levels) - 1)
        # Only the fine grid stays: the queried logits are written into it, in place.
        logits = upsample(logits, fine_box)
        query_masked(query, valid, fine_box, logits, chunk, dtype, on_chunk)
    return logits, Box(box.bound, levels[-1])


def extract_surface(logits: Tensor, box: Box, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes on logits (r+1,)^3 -> vertices (n, 3) float32, faces (m, 3) int64.

    Faces are wound counter-clockwise seen from outside (occupancy is positive inside).
    """
    # The no-surface check on the device: two passes over the host copy (57M floats at
    # octree 384) cost more than the reduction where the logits already are.
    low, high = torch.aminmax(logits.detach())
    if not (float(low) < level < float(high)):
        raise ValueError("the occupancy field has no surface at this level")
    volume = logits.detach().to(torch.float32).cpu().numpy()
    vertices, faces, _, _ = measure.marching_cubes(volume, level, method="lewiner")
    # Upstream divides by the point count (r+1), not the cell count r; kept for parity.
    vertices = vertices / box.size * (2 * box.bound) - box.bound
    return vertices.astype(np.float32), np.ascontiguousarray(faces[:, ::-1]).astype(np.int64)
