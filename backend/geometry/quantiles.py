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

BINS = 4096  # histogram bins: ~200 values a bin for 800k faces, a small sort each


def quantile(values: np.ndarray, levels: np.ndarray, chunks: int) -> np.ndarray:
    """np.quantile(values, levels) (method "linear") for float64 ``values`` (n,), levels (k,)
    in [0, 1]; ``chunks`` pieces for the parallel passes. A NaN or an infinity: numpy's own call."""
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
    ranks = np.unique(np.concatenate([low, high]))
    found, ok = _order_statistics(values, ranks, max(1, chunks), BINS)
    if not ok:  # a NaN (numpy sorts it last, answering NaN there) or an infinite span
        return np.quantile(values, levels)
    a = found[np.searchsorted(ranks, low)]
    b = found[np.searchsorted(ranks, high)]
    diff = b - a  # numpy's _lerp: from the nearer end, so t = 1 gives b exactly
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


@numba.njit(cache=True, nogil=True, parallel=True)
def _order_statistics(values, ranks, chunks, bins):
    """(np.sort(values)[ranks], True), or (anything, False) when a value is not finite or
    their span too small to bin. ``ranks`` ascending and unique, within [0, n)."""
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
    # Per chunk histograms; a value's bin never decreases with the value, so the bins hold
    # the sorted order's consecutive runs.
    counts = np.zeros((chunks, bins), np.int64)
    for c in numba.prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            counts[c, _bin(values[i], lo, scale, bins)] += 1
    start = np.zeros(bins + 1, np.int64)
    for b in range(bins):
        total = 0
        for c in range(chunks):
            total += counts[c, b]
        start[b + 1] = start[b] + total
    # The bins holding a wanted rank, and where each chunk writes its members of each.
    slot = np.full(bins, -1, np.int64)
    wanted = np.empty(ranks.shape[0], np.int64)
    used = 0
    for r in range(ranks.shape[0]):
        b = np.searchsorted(start, ranks[r], side="right") - 1
        if slot[b] < 0:
            slot[b] = used
            wanted[used] = b
            used += 1
    offset = np.zeros((chunks, used), np.int64)
    first = np.zeros(used + 1, np.int64)
    for s in range(used):
        first[s + 1] = first[s]
        for c in range(chunks):
            offset[c, s] = first[s + 1]
            first[s + 1] += counts[c, wanted[s]]
    members = np.empty(first[used])
    for c in numba.prange(chunks):
        at = offset[c].copy()
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            s = slot[_bin(values[i], lo, scale, bins)]
            if s >= 0:
                members[at[s]] = values[i]
                at[s] += 1
    for s in range(used):
        members[first[s] : first[s + 1]].sort()
    for r in range(ranks.shape[0]):
        b = np.searchsorted(start, ranks[r], side="right") - 1
        s = slot[b]
        found[r] = members[first[s] + ranks[r] - start[b]]
    return found, True


@numba.njit(cache=True, nogil=True, inline="always")
def _bin(v, lo, scale, bins):
    return min(int((v - lo) * scale), bins - 1)
