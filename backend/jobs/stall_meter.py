"""Where a job's thread was not running: garbage collection and waiting (GIL, I/O, sleeping syncs).

A warm job's stages on an H200 took 0.06 s in one run and 1.1 s in the next, on the same input
(``benchmarks/product_path.py``). Wall time alone cannot say why; two cheap figures can:

- ``gc_s``: the cyclic garbage collector's pauses while the job ran (process-wide: every
  thread stops for them), from ``gc.callbacks``.
- ``waited_s``: the job's wall time minus its thread's CPU time. A thread waiting for the GIL
  (another Python thread busy), for a file or a socket, or for a sleeping device sync uses no
  CPU; a spinning CUDA sync and the thread's own work do.
- ``other_threads_cpu_s``: the CPU time the process's other threads used meanwhile: the job's
  own parallel kernels' pool threads, and anything else busy in the process (a kernel warm-up
  still compiling, another job), which is what a high ``waited_s`` was waiting for.

Both go into the job's manifest timings, so a slow job in a farm's logs explains itself.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any


class StallMeter:
    """Measure one block of a thread's work: ``with StallMeter() as meter: ...`` then
    ``meter.figures()``. Meters may nest or run in several threads at once."""

    _lock = threading.Lock()
    _open: set[StallMeter] = set()

    def __init__(self) -> None:
        self.gc_s = 0.0
        self.collections = 0
        self._gc_started: float | None = None
        self._wall = 0.0
        self._cpu = 0.0
        self._process_cpu = 0.0

    def __enter__(self) -> StallMeter:
        with StallMeter._lock:
            if not StallMeter._open:
                gc.callbacks.append(StallMeter._on_gc)
            StallMeter._open.add(self)
        self._wall = time.perf_counter()
        self._cpu = time.thread_time()
        self._process_cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wall = time.perf_counter() - self._wall
        self._cpu = time.thread_time() - self._cpu
        self._process_cpu = time.process_time() - self._process_cpu
        with StallMeter._lock:
            StallMeter._open.discard(self)
            if not StallMeter._open:
                gc.callbacks.remove(StallMeter._on_gc)

    @staticmethod
    def _on_gc(phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        for meter in tuple(StallMeter._open):  # no lock: a collection can start anywhere
            if phase == "start":
                meter._gc_started = now
            elif meter._gc_started is not None:
                meter.gc_s += now - meter._gc_started
                meter.collections += 1
                meter._gc_started = None

    def figures(self) -> dict[str, float]:
        """``gc_s``, ``waited_s`` and ``other_threads_cpu_s`` of the block, in seconds."""
        return {
            "gc_s": round(self.gc_s, 4),
            "waited_s": round(max(0.0, self._wall - self._cpu), 4),
            "other_threads_cpu_s": round(max(0.0, self._process_cpu - self._cpu), 4),
        }
