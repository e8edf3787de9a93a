"""Row gathers of the torch geometry path: ``table[index]`` without CUDA's slow row kernel.

On CUDA, ``table[index]`` and ``index_select`` send a gather of contiguous rows whose size is a
multiple of 16 bytes to a kernel built for long rows. For the bake's short ones (a copy's
(3, 2) float64 texel corners, a corner's UV or tangent) and millions of indices it ran at
~80 GB/s on an H200: 4.9 ms for 8M rows of 16 or 48 bytes, against 0.26 ms for 24-byte rows,
27 ms of the 2048 px bake in all. Such rows are gathered here element by element from the
flat table (each element's offset made first): the same values, on any device (so CPU
tests run this path too).
"""

from __future__ import annotations

import math
from typing import Any

_SLOW_ROW_BYTES = 16  # rows of a multiple of this many bytes take the long-row kernel


def rows(table: Any, index: Any) -> Any:
    """``table[index]`` for an integer tensor ``index`` of any shape: (*index.shape,
    *table.shape[1:]), the same values."""
    width = math.prod(table.shape[1:])
    if width < 2 or (width * table.element_size()) % _SLOW_ROW_BYTES:
        return table[index]  # not the long-row kernel
    import torch  # optional dependency: only the torch geometry path needs it

    offsets = index.reshape(-1, 1) * width + torch.arange(width, device=index.device)
    return table.reshape(-1)[offsets].reshape(*index.shape, *table.shape[1:])
