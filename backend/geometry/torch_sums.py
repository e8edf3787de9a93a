"""Per-row sums on a torch device that give the same bits on every run: ``index_add_`` in order.

``out.index_add_(0, index, values)`` on CUDA adds floats with atomics, in whatever order the
threads arrive, so the last bits of a sum change from run to run. The decimator's quadrics are
such sums, and near-tied collapse choices then go either way: the same input made a different
asset on every GPU job (20,000 or 20,001 faces). Here the contributions are sorted by row
(stably, so each row keeps their given order) and ``torch.segment_reduce`` adds each row's
run: for 2-D values its CUDA kernel gives every output element one thread that loops over the
run in order, as the CPU's ``index_add_`` does. So a device's sums are the sequential sums,
the same on every run and the same bits as the CPU's (up to the device's own arithmetic in
the values themselves).

Integer ``index_add_`` and ``scatter_reduce`` min/max need none of this: their results do not
depend on the order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def index_sum(
    index: Any,
    values: Any | Callable[[Any], Any],
    rows: int,
    *,
    slice_size: int | None = None,
    long_rows: bool = False,
) -> Any:
    """(rows, c) sums: row i adds ``values[j]`` for each ``index[j] == i`` in increasing j.

    ``values`` is a (k, c) tensor, or a function from positions j (a 1-D int64 tensor) to
    their (len(j), c) values, so a caller never holds all k rows at once; (k,) values give
    (rows,) sums. ``slice_size``: at most about that many contributions are gathered at a
    time (a row's run is never split: splitting would change its order of addition); None
    gathers them all at once. ``long_rows`` (1-D values only): for a few rows of very many
    values each (a piece's faces), where one thread per row would walk a long run alone
    (800k faces: 35 ms on an H200); each row is added as CUB's fixed tree instead (0.9 ms),
    the same bits on every run but not the loop's.
    """
    import torch  # optional dependency: only the torch geometry path needs it

    order = torch.sort(index, stable=True).indices
    # Not bincount: it waits for the GPU to learn the largest index. Integer adds: exact.
    counts = torch.zeros(rows, dtype=torch.int64, device=index.device)
    counts.index_add_(0, index, torch.ones_like(index))
    take = values if callable(values) else values.__getitem__
    if slice_size is None or len(order) <= slice_size:
        return _sums(take(order), counts, long_rows)
    # Row ranges of about slice_size contributions each; their bounds cost one wait.
    offsets = torch.zeros(rows + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    cuts = torch.arange(slice_size, len(order), slice_size, device=counts.device)
    first = torch.searchsorted(offsets, cuts)  # the first row starting at or after each cut
    row_cut, position = torch.stack([first, offsets[first]]).tolist()
    row_cut, position = [0, *row_cut, rows], [0, *position, len(order)]
    spans = zip(row_cut[:-1], row_cut[1:], position[:-1], position[1:], strict=True)
    pieces = [_sums(take(order[start:stop]), counts[lo:hi], long_rows)
              for lo, hi, start, stop in spans
              if hi > lo]  # fmt: skip
    return torch.cat(pieces)


def _sums(ordered: Any, counts: Any, tree: bool) -> Any:
    """Each run of ``ordered`` (its rows' lengths ``counts``) added up; empty runs: 0. On
    CUDA, 2-D data takes the kernel that walks each run in order, 1-D data CUB's segmented
    reduction (a fixed tree per run)."""
    import torch

    if tree:
        if ordered.dim() != 1:
            raise ValueError("long_rows sums take 1-D values")
        return torch.segment_reduce(ordered, "sum", lengths=counts, axis=0, unsafe=True)
    column = ordered.dim() == 1
    data = ordered[:, None] if column else ordered  # one column: the in-order kernel
    out = torch.segment_reduce(data, "sum", lengths=counts, axis=0, unsafe=True)
    return out[:, 0] if column else out
