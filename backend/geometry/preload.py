"""Load the CPU pipeline's compiled kernels from numba's disk cache on a second thread.

numba loads a cached kernel on its first call: reading the index, unpickling, linking the
machine code (5-40 ms a kernel, ~0.13 s more for the first, which sets up numba's CPU target).
A fresh ``dreamcad-backend postprocess`` process calls 23 of them, ~0.35-0.45 s in all, each
paid inside a stage on the main thread while the second core idles through the serial parts
(reading the mesh, the numpy steps of clean). :func:`start` loads them there instead, in the
order the pipeline first calls them, so most are in memory before they are needed.

Only signatures already in the on-disk cache are loaded: an uncached or stale kernel compiles
on its first call as before, on the main thread (only a cache entry that fails to load, which
numba then compiles, would compile here, as its first call would have). Loading
takes numba's compiler lock kernel by kernel, so a main-thread call waits at most for the one
load in flight; the thread yields between kernels. A CPU-path helper for one-job processes: a
long-lived server has every kernel loaded after its first job (or its warm-up) anyway.
The thread first sets up numba's array maths without importing scipy.linalg (blas_probe)
and imports numpy.ma (numba's first typeof of an array asks for it).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

from backend.geometry import blas_probe

log = logging.getLogger(__name__)

# (module under backend.geometry, kernel): what the CPU pipeline calls from Python, first call
# first (clean, inner shells, decimate, UV, tangents, bake, export and preview, quality). A
# kernel another kernel calls is linked into its caller's cache entry and needs no load.
KERNELS = (
    ("clean", "_cell_keys"),
    ("clean", "_unique_keys"),
    ("clean", "_gather_rows"),
    ("clean", "_repeats"),
    ("clean", "_keep_rows"),
    ("clean", "_face_measures"),
    ("adjacency", "_vertex_faces"),
    ("clean", "_duplicate_mask"),
    ("adjacency", "_union_faces"),
    ("adjacency", "_rank_roots"),
    ("adjacency", "_edge_partners"),
    ("adjacency", "_compact_pairs"),
    ("clean", "_used_vertices"),
    ("adjacency", "union_find"),
    ("inner_shells", "_face_normals"),
    ("inner_shells", "_vertex_patch_range"),
    ("qem", "_unit_frame"),
    ("qem", "prepare_quadrics"),
    ("qem", "_extent"),
    ("qem", "_live_centroids"),
    ("quantiles", "_order_statistics"),
    ("qem", "_slab_of"),
    ("qem", "_slab_layout"),
    ("qem", "_parallel_sweeps"),
    ("qem", "_edge_key_counts"),
    ("qem", "_decimate"),
    ("qem", "_roots"),
    ("uv", "_face_normals"),
    ("uv", "_project"),
    ("uv", "_rotate"),
    ("uv_pack", "_by_chart"),
    ("uv_pack", "_place_all"),
    ("uv_pack", "_to_atlas"),
    ("uv", "_split_seams"),
    ("uv", "_uv_signed_areas"),
    ("tangents", "_accumulate_normals"),
    ("tangents", "_unit_rows"),
    ("tangents", "_face_frames"),
    ("tangents", "_vertex_frames"),
    ("transfer", "_closest_faces"),
    ("transfer", "_splat"),
    ("transfer", "_texel_values"),
    ("raster", "_rasterize"),
    ("bake", "_encode_normals"),
    ("bake", "_quantize_into"),
    ("dilate", "_dilate"),
    ("dilate", "_dilate_rows"),  # called alone on one thread (one band)
    ("grid_knn", "_bounds"),
    ("grid_knn", "_bucket"),
    ("grid_knn", "_query"),
    ("quality", "_centroids"),
    ("transfer", "_closest_of_candidates"),
)


def cached_signatures(dispatcher) -> list[tuple]:
    """The argument types ``dispatcher`` has machine code for in the disk cache, for this
    machine and its current source (a stale index reads as empty)."""
    cache = getattr(dispatcher, "_cache", None)
    index_of = getattr(getattr(cache, "_cache_file", None), "_load_index", None)
    if index_of is None:  # a dispatcher without cache=True
        return []
    codegen = dispatcher.targetctx.codegen()
    # An index key is (signature, machine, bytecode hashes): only a key numba would compute
    # for this process is a load; any other signature would compile.
    return [key[0] for key in index_of() if key == cache._index_key(key[0], codegen)]


def kernels(names=KERNELS) -> list:
    """The dispatchers ``names`` (module under backend.geometry, kernel) name, in order."""
    return [getattr(importlib.import_module(f"backend.geometry.{module}"), name)
            for module, name in names]  # fmt: skip


def load_cached(dispatchers) -> dict[str, float]:
    """Load every cached signature of ``dispatchers`` now, in order; returns the seconds each
    took, by name. Asks only for signatures in the cache index (no compile unless an entry
    fails to load)."""
    seconds: dict[str, float] = {}
    for dispatcher in dispatchers:
        started = time.perf_counter()
        for signature in cached_signatures(dispatcher):
            if signature not in dispatcher.overloads:
                dispatcher.compile(signature)  # in the index: a load, not a compile
        seconds[dispatcher.py_func.__qualname__] = time.perf_counter() - started
        time.sleep(0)  # let a waiting main thread take the compiler lock between kernels
    return seconds


def start(names=KERNELS) -> threading.Thread:
    """Begin loading ``names``' cached kernels on a daemon thread; the caller carries on."""
    thread = threading.Thread(target=_load_quietly, args=(names,), name="numba-preload",
                              daemon=True)  # fmt: skip
    thread.start()
    return thread


def _load_quietly(names) -> None:
    try:
        # First: numba's target set-up (inside the first load) would import scipy.linalg.
        blas_probe.import_array_math()
    except Exception:  # then the target imports it as before
        log.debug("numba array-maths import without scipy.linalg failed", exc_info=True)
    # numba's typeof of an array argument asks for np.ma, which numpy imports on first use
    # (~15 ms): here, not inside clean's first kernel call on the main thread.
    import numpy.ma  # noqa: F401

    try:
        load_cached(kernels(names))
    except Exception:  # a failed preload only means the first calls load as before
        log.debug("numba kernel preload stopped", exc_info=True)
