"""FlashVDM's octree volume decode, with its adaptive key selection.

The levels are FlashVDM's (:func:`volume.flashvdm_resolutions`: the coarsest snapped to a
multiple of ``mini_grid_num`` minus one). The coarse grid is cut into ``mini_grid_num``^3
mini-grids, each decoded as one batch element; each finer level's points are sorted into the
cells of a 6x6x6 split of their bounding box and sent in chunks of whole cells. With
``adaptive`` (the default, as upstream's ``enable_flashvdm``), each mini-grid and each cell
attends to its own top keys (:mod:`key_selection`); without it, attention is exact and the
result equals :func:`volume.decode_hierarchical` on the same levels. The points queried, their
order inside a group and the groups are upstream's, since they decide which keys are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from backend.models.hunyuan3d.key_selection import (
    COARSE_QUERY_STRIDE,
    FINE_QUERY_STRIDE,
    KeySelection,
)
from backend.models.hunyuan3d.volume import (
    Box,
    ChunkFn,
    fill_level,
    flashvdm_resolutions,
    grid_axis,
    grid_points,
    queried_mask,
    refine_points,
)

# points (b, p, 3) and how to select keys -> logits (b, p)
SelectiveQueryFn = Callable[[Tensor, KeySelection | None], Tensor]

CELLS_PER_AXIS = 6  # upstream's spatial split of a fine level for key selection


def mini_grids(box: Box, mini_grid_num: int, device: torch.device | str) -> Tensor:
    """The (r+1)^3 grid points cut into mini-grids -> (mini_grid_num^3, m^3, 3) float32,
    m = (r+1) / mini_grid_num; points "ij"-ordered inside each mini-grid."""
    n, g = box.size, mini_grid_num
    if n % g:
        raise ValueError(f"{n} grid points per side do not split into {g} mini-grids")
    m = n // g
    axis = grid_axis(box, device)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
    return points.view(g, m, g, m, g, m, 3).permute(0, 2, 4, 1, 3, 5, 6).reshape(g**3, m**3, 3)


def from_mini_grids(logits: Tensor, mini_grid_num: int) -> Tensor:
    """Logits (mini_grid_num^3, m^3) -> the grid (r+1,)^3, undoing :func:`mini_grids`."""
    g = mini_grid_num
    m = round((logits.numel() // g**3) ** (1 / 3))
    return logits.view(g, g, g, m, m, m).permute(0, 3, 1, 4, 2, 5).reshape(g * m, g * m, g * m)


def cell_order(points: Tensor) -> tuple[Tensor, Tensor]:
    """points (q, 3) -> (order (q,) that groups them by cell, points per non-empty cell (c,)).

    Cells split the points' bounding box 6 ways per axis. The order inside a cell decides
    which queries are sampled for key selection, so the sort is upstream's own call: torch's
    default (not stable) sort, whose tie order is the same as upstream's on the same device
    and torch version (a stable sort measurably changes the result).
    """
    low, high = points.min(dim=0).values, points.max(dim=0).values
    span = torch.where(high > low, high - low, torch.ones_like(high))
    cell = torch.floor((points - low) / span * (CELLS_PER_AXIS - 0.001)).long()
    flat = (cell[:, 0] * CELLS_PER_AXIS + cell[:, 1]) * CELLS_PER_AXIS + cell[:, 2]
    ordered, order = torch.sort(flat)
    return order, torch.unique_consecutive(ordered, return_counts=True)[1]


def cell_chunks(counts: list[int], chunk: int) -> list[list[int]]:
    """Consecutive cells packed into chunks of under ``chunk`` points (a bigger cell alone)."""
    chunks: list[list[int]] = []
    total = 0
    for count in counts:
        if chunks and total + count < chunk:
            chunks[-1].append(count)
            total += count
        else:
            chunks.append([count])
            total = count
    return chunks


def _decode_coarse(
    query: SelectiveQueryFn, box: Box, chunk: int, mini_grid_num: int, adaptive: bool,
    device: torch.device | str, dtype: torch.dtype,
) -> Tensor:
    grids = mini_grids(box, mini_grid_num, device).to(dtype)
    per_batch = max(chunk // grids.shape[1], 1)
    selection = KeySelection(COARSE_QUERY_STRIDE) if adaptive else None
    logits = [query(grids[start : start + per_batch], selection).float()
              for start in range(0, grids.shape[0], per_batch)]
    return from_mini_grids(torch.cat(logits), mini_grid_num)


def decode_flashvdm(
    query: SelectiveQueryFn,
    box: Box,
    chunk: int,
    device: torch.device | str,
    dtype: torch.dtype,
    mc_level: float = 0.0,
    adaptive: bool = True,
    min_resolution: int = 63,
    mini_grid_num: int = 4,
    on_chunk: ChunkFn | None = None,
) -> tuple[Tensor, Box]:
    """FlashVDM octree decode -> (logits (r+1,)^3 float32, the finest box).

    Points a finer level skips hold the upsampled coarser logits (upstream leaves NaN).
    """
    levels = flashvdm_resolutions(box.resolution, mini_grid_num, min_resolution)
    logits = _decode_coarse(
        query, Box(box.bound, levels[0]), chunk, mini_grid_num, adaptive, device, dtype
    )
    valid = torch.ones_like(logits, dtype=torch.bool)
    for depth, resolution in enumerate(levels[1:], start=1):
        fine_box = Box(box.bound, resolution)
        chosen = refine_points(logits, valid, fine_box, mc_level, depth == len(levels) - 1)
        # Kept in float32 as upstream does, whatever the model dtype.
        points = grid_points(chosen, fine_box)
        order, counts = cell_order(points)
        chunks = cell_chunks(counts.tolist(), chunk)
        values = torch.empty(len(points), dtype=torch.float32, device=points.device)
        start = 0
        for index, cells in enumerate(chunks):
            end = start + sum(cells)
            selection = KeySelection(FINE_QUERY_STRIDE, tuple(cells)) if adaptive else None
            values[order[start:end]] = query(points[order[start:end]][None], selection)[0].float()
            start = end
            if on_chunk is not None:
                on_chunk(index + 1, len(chunks))
        logits, valid = fill_level(logits, fine_box, chosen, values), queried_mask(chosen, fine_box)
    return logits, Box(box.bound, levels[-1])
