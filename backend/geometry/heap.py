"""Keep freed memory in the process heap, for a short batch process that allocates big arrays.

The pipeline makes and drops arrays of tens of MB (texel blocks, splat images, the decimator's
per-slab lists). glibc serves each from fresh mmap'd pages and returns them on free, so every
one is page-faulted in anew: on the shared 2-core benchmark machine that was 1.0-1.4 s of
system time in a 6-7 s ``dreamcad-backend postprocess``. With mmap off for the main heap and
a high trim threshold, freed blocks stay mapped and the next array reuses them (measured: system
time 0.4-0.6 s, the same peak RSS, the same asset bytes). The price is that the heap does not
shrink until the process ends, which suits a one-job process, not the long-lived server.
glibc only: elsewhere :func:`keep_freed_memory` does nothing.

:func:`freeze_objects` is the same trade for Python's own objects: the imported modules (numba,
llvmlite, scipy: hundreds of thousands of objects) move out of the cyclic garbage collector's
reach, so neither its passes during the job nor the collections of interpreter shutdown walk
them again (the shutdown ones were 0.35-0.4 s of a ~5 s postprocess process on 2 cores).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

# mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap at the top
TOP_PAD = 256 << 20  # grow the heap in 256 MiB steps: fewer brk calls


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse in this process; True where it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def freeze_objects() -> int:
    """Put every object alive now beyond the cyclic garbage collector (``gc.freeze``); returns
    how many are frozen in all. For a one-job process: call it once the imports are done and
    again when the job's outputs are written, just before exit. What is frozen is never
    collected, so a long-lived process (the server) must not call it."""
    gc.freeze()
    return gc.get_freeze_count()
