"""Grow baked texels past chart borders so filtering and mip-maps never sample empty texels.

Each round fills the empty texels touching filled ones with the mean of their filled
8-neighbours; only the moving front is visited, so the cost follows the band that is filled,
not the image size. Compiled with numba.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _dilate(values, filled, rounds, background):
    height, width, channels = values.shape
    queued = filled.copy()
    front = np.empty(height * width, dtype=np.int64)
    count = 0
    for row in range(height):
        for col in range(width):
            if filled[row, col]:
                continue
            for dr in range(-1, 2):
                r = row + dr
                if r < 0 or r >= height:
                    continue
                for dc in range(-1, 2):
                    c = col + dc
                    if 0 <= c < width and filled[r, c] and not queued[row, col]:
                        queued[row, col] = True
                        front[count] = row * width + col
                        count += 1
    total = np.zeros(channels)
    next_front = np.empty_like(front)
    for _ in range(rounds):
        if count == 0:
            break
        fresh = np.empty((count, channels), dtype=np.uint8)
        for i in range(count):
            row, col = front[i] // width, front[i] % width
            total[:] = 0.0
            n = 0
            for dr in range(-1, 2):
                r = row + dr
                if r < 0 or r >= height:
                    continue
                for dc in range(-1, 2):
                    c = col + dc
                    if 0 <= c < width and filled[r, c]:
                        for k in range(channels):  # scalar adds: no array temporaries
                            total[k] += values[r, c, k]
                        n += 1
            for c in range(channels):
                fresh[i, c] = np.uint8(min(total[c] / max(n, 1) + 0.5, 255.0))
        next_count = 0
        for i in range(count):
            row, col = front[i] // width, front[i] % width
            for k in range(channels):
                values[row, col, k] = fresh[i, k]
            filled[row, col] = True
        for i in range(count):
            row, col = front[i] // width, front[i] % width
            for dr in range(-1, 2):
                r = row + dr
                if r < 0 or r >= height:
                    continue
                for dc in range(-1, 2):
                    c = col + dc
                    if 0 <= c < width and not queued[r, c]:
                        queued[r, c] = True
                        next_front[next_count] = r * width + c
                        next_count += 1
        front, next_front = next_front, front
        count = next_count
    if background.shape[0] == channels:  # the texels still empty take it (one pass, no mask)
        for row in range(height):
            for col in range(width):
                if not filled[row, col]:
                    for k in range(channels):
                        values[row, col, k] = background[k]


def dilate(
    values: np.ndarray,
    filled: np.ndarray,
    rounds: int,
    *,
    background: np.ndarray | None = None,
    in_place: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Extend ``values`` (h, w, c) uint8 from ``filled`` (h, w) bool texels by ``rounds`` texels.

    Returns (values, filled) after the rounds: texels further than ``rounds`` stay as they
    were, or become ``background`` (c,) uint8 when given (``filled`` still False there). New
    arrays, unless ``in_place`` (the caller's uint8 / bool arrays, changed and returned: a
    copy of a 2048 px map and its mask is ~30 MB of fresh pages).
    """
    values = np.asarray(values, dtype=np.uint8) if in_place else np.array(values, np.uint8)
    filled = np.asarray(filled, dtype=bool) if in_place else np.array(filled, dtype=bool)
    fill = np.zeros(0, np.uint8) if background is None else np.asarray(background, np.uint8)
    _dilate(values, filled, rounds, fill)
    return values, filled
