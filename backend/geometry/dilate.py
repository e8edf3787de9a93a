"""Grow baked texels past chart borders so filtering and mip-maps never sample empty texels.

Each round fills the empty texels touching filled ones with the mean of their filled
8-neighbours; only the moving front is visited, so the cost follows the band that is filled,
not the image size. Compiled with numba.

In parallel by bands of rows, one band a thread: after ``rounds`` rounds a texel depends only
on the texels at most ``rounds`` rows away, so each band works alone on a copy of its rows and
``rounds`` rows either side (where the copy's edge is wrong, the error moves in a row a round
and never reaches the band's own rows), then writes back its own rows. The answer is the one
the whole image gives, for any band count. Two parallel passes in all (copy, then dilate and
write back), not a few per round: a parallel pass waits for its slowest thread, and on a
shared machine each pass is one more chance that a thread sits descheduled.
"""

from __future__ import annotations

import numba
import numpy as np

MIN_BAND_ROWS = 64  # a band's own rows, at least: its halo costs 2 x rounds rows of copying


@numba.njit(cache=True, nogil=True)
def _dilate_rows(values, filled, rounds, background):
    """The dilation of one array of rows (the whole image, or a band and its halo)."""
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


@numba.njit(cache=True, nogil=True, parallel=True)
def _dilate(values, filled, rounds, background, bands):
    """Dilate ``values`` / ``filled`` in place in ``bands`` bands of rows (module docstring)."""
    height = values.shape[0]
    halo = max(rounds, 0)
    first = np.empty(bands + 1, np.int64)  # band b owns rows first[b]:first[b + 1]
    low = np.empty(bands, np.int64)  # and works on rows low[b]:high[b]
    high = np.empty(bands, np.int64)
    at = np.zeros(bands + 1, np.int64)  # its copy's rows in the scratch: at[b]:at[b + 1]
    for band in range(bands + 1):
        first[band] = band * height // bands
    for band in range(bands):
        low[band] = max(0, first[band] - halo)
        high[band] = min(height, first[band + 1] + halo)
        at[band + 1] = at[band] + high[band] - low[band]
    scratch = np.empty((at[bands], values.shape[1], values.shape[2]), np.uint8)
    scratch_filled = np.empty((at[bands], filled.shape[1]), np.bool_)
    for band in numba.prange(bands):  # every copy is made before any band writes back
        scratch[at[band] : at[band + 1]] = values[low[band] : high[band]]
        scratch_filled[at[band] : at[band + 1]] = filled[low[band] : high[band]]
    for band in numba.prange(bands):
        rows = scratch[at[band] : at[band + 1]]
        rows_filled = scratch_filled[at[band] : at[band + 1]]
        _dilate_rows(rows, rows_filled, rounds, background)
        own = first[band] - low[band]
        size = first[band + 1] - first[band]
        values[first[band] : first[band + 1]] = rows[own : own + size]
        filled[first[band] : first[band + 1]] = rows_filled[own : own + size]


def bands_for(height: int, rounds: int) -> int:
    """Bands of rows for a ``height``-row image: one per numba thread, each at least
    MIN_BAND_ROWS and 2 x ``rounds`` rows (its halo) tall; one band needs no copy."""
    tallest = max(MIN_BAND_ROWS, 2 * rounds, 1)
    return max(1, min(numba.get_num_threads(), height // tallest))


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
    bands = bands_for(len(values), rounds)
    if bands == 1:  # the whole image at once: no copy
        _dilate_rows(values, filled, rounds, fill)
    else:
        _dilate(values, filled, rounds, fill, bands)
    return values, filled
