"""np.quantile's default (linear) answer for a large float array, on every core.

The decimator cuts the mesh into slabs at quantiles of the live faces' centroids, once per
parallel round. ``np.quantile`` partitions the whole array on one thread (~21 ms for 800k faces,
the largest serial step left between the parallel rounds). Here the order statistics it needs
come from a parallel histogram instead: only the few values in the histogram bins that hold
the wanted ranks are gathered and sorted. The interpolation is numpy's own arithmetic, so the
cuts (and so the slabs and the decimated mesh) are numpy's to the bit.
"""

from __future__ import annotations

import numba
import numpy as np

from backend.geometry.adjacency import chunk_offsets

BINS = 4096  # histogram bins: ~200 values a bin for 800k faces, a small sort each


def quantile(values: np.ndarray, levels: np.ndarray, chunks: int) -> np.ndarray:
    """np.quantile(values, levels) (method "linear") for float64 ``values`` (n,), levels (k,)
    in [0, 1]; ``chunks`` pieces for the parallel passes. A NaN or an infinity: numpy's own
    call."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    n = len(values)
    if n == 0 or len(levels) == 0:
        return np.quantile(values, levels)  # numpy's own answer (and error) for the edge cases
    virtual = (n - 1) * levels  # numpy's virtual indexes for "linear"
    previous = np.floor(virtual)
    last = virtual >= n - 1
    low = np.where(last, n - 1, previous).astype(np.int64)
    high = np.where(last, n - 1, previous + 1).astype(np.int64)
    gamma = virtual - np.where(last, -1.0, previous)  # numpy's (unused where a == b)
    found, ok = _order_statistics(values, np.concatenate([low, high]), max(1, chunks), BINS)
    if not ok:  # a NaN (numpy sorts it last, answering NaN there) or an infinite span
        return np.quantile(values, levels)
    a, b = found[: len(levels)], found[len(levels) :]
    diff = b - a  # numpy's _lerp: from the nearer end, so t = 1 gives b exactly
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


@numba.njit(cache=True, nogil=True, parallel=True)
def _order_statistics(values, ranks, chunks, bins):
    """(np.sort(values)[ranks], True), or (anything, False) when a value is not finite or
    their span too small to bin. ``ranks`` within [0, n)."""
    n = values.shape[0]
    lows = np.empty(chunks)
    highs = np.empty(chunks)
    odd = np.zeros(chunks, np.bool_)
    for c in numba.prange(chunks):
        lo, hi = np.inf, -np.inf
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            v = values[i]
            if not np.isfinite(v):
                odd[c] = True
            lo = min(lo, v)
            hi = max(hi, v)
        lows[c], highs[c] = lo, hi
    found = np.empty(ranks.shape[0])
    if np.any(odd):
        return found, False
    lo, hi = np.inf, -np.inf
    for c in range(chunks):
        lo = min(lo, lows[c])
        hi = max(hi, highs[c])
    if not hi > lo:  # one value: every rank holds it
        found[:] = lo
        return found, True
    scale = bins / (hi - lo)
    if not np.isfinite(scale):
        return found, False
    # Per-chunk histograms. A value's bin never decreases with the value, so bin b holds the
    # sorted order's run start[b]:start[b + 1]: only the runs with a wanted rank are written
    # (at their sorted positions) and sorted.
    counts = np.zeros((chunks, bins), np.int64)
    for c in numba.prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            counts[c, _bin(values[i], lo, scale, bins)] += 1
    start = chunk_offsets(counts)  # counts become each chunk's write positions
    wanted = np.zeros(bins, np.bool_)
    for r in range(ranks.shape[0]):
        wanted[np.searchsorted(start, ranks[r], side="right") - 1] = True
    members = np.empty(n)  # only the wanted runs are written and read
    for c in numba.prange(chunks):
        fill = counts[c]
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            b = _bin(values[i], lo, scale, bins)
            if wanted[b]:
                members[fill[b]] = values[i]
                fill[b] += 1
    for b in range(bins):
        if wanted[b]:
            members[start[b] : start[b + 1]].sort()
    for r in range(ranks.shape[0]):
        found[r] = members[ranks[r]]
    return found, True


@numba.njit(cache=True, nogil=True, inline="always")
def _bin(v, lo, scale, bins):
    return min(int((v - lo) * scale), bins - 1)
