"""Run one call on a second thread while the caller carries on, and collect its answer later.

For work the pipeline knows early but needs late, run beside a serial stretch that leaves the
other core idle: the answer is the same as calling it in place (same function, same inputs),
only the time moves. Worth it only for calls whose heavy part lets go of the GIL (a ``nogil``
kernel, zlib), which runs while the main thread is in a ``nogil`` kernel or numpy of its own.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Beside(Generic[T]):
    """``function(*args)`` started on a daemon thread; :meth:`result` waits for its value or
    raises what it raised."""

    def __init__(
        self, function: Callable[..., T], *args: Any, name: str = "beside", spare: int = 0
    ) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(function, args, spare), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, function: Callable[..., T], args: tuple, spare: int) -> None:
        try:
            if spare:
                leave_cores(spare)
            self._value = function(*args)
        except BaseException as error:  # handed to the caller in result()
            self._error = error

    def wait(self) -> None:
        """Wait for the call to end, whatever its outcome (nothing is raised)."""
        self._thread.join()

    def result(self) -> T:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


# Python hands the GIL to a waiting thread only after the holder has kept it this long (5 ms
# by default). The unwrap between the GPU stages takes and drops the GIL ~30 times (numba
# kernels, numpy glue) while threads beside it launch GPU work: each take could wait 5 ms.
HANDOFF_S = 0.0005
_handoff_lock = threading.Lock()
_handoff_users = 0
_handoff_before = 0.0


@contextlib.contextmanager
def quick_handoff() -> Iterator[None]:
    """Within: the interpreter's switch interval at ``HANDOFF_S`` (a process-wide knob: the
    first caller in sets it, the last one out restores it, so concurrent jobs may nest)."""
    global _handoff_users, _handoff_before
    with _handoff_lock:
        if _handoff_users == 0:
            _handoff_before = sys.getswitchinterval()
            sys.setswitchinterval(min(HANDOFF_S, _handoff_before))
        _handoff_users += 1
    try:
        yield
    finally:
        with _handoff_lock:
            _handoff_users -= 1
            if _handoff_users == 0:
                sys.setswitchinterval(_handoff_before)


def leave_cores(spare: int) -> None:
    """Let the calling thread's parallel numba kernels use all cores but ``spare`` (at least
    one). numba's thread count is per thread: a call measured beside a serial stage (the UV
    unwrap) would otherwise take every core, and the stage, the critical path, ran ~2x slower
    on a 16-core GPU box (0.06 s alone, 0.11 s beside the quality figures)."""
    import numba

    numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS - spare))


@contextlib.contextmanager
def fewer_cores(spare: int, from_threads: int = 3) -> Iterator[None]:
    """Within: the calling thread's parallel numba kernels leave ``spare`` cores to a call
    running beside them, when they have at least ``from_threads`` threads, and get their
    thread count back after. A kernel's loop is cut into equal static chunks, one per thread:
    with every core taken, the thread that shares its core with the call beside finishes last
    and the kernel waits for it. With few threads, giving one up costs as much."""
    import numba

    before = numba.get_num_threads()
    if before >= from_threads:
        numba.set_num_threads(max(1, before - spare))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def kernels_threadsafe() -> bool:
    """Whether parallel numba kernels may run on two threads at once: numba's ``omp`` and ``tbb``
    threading layers allow it; ``workqueue`` aborts the process if it happens. False until the
    process has run a parallel kernel (the layer is chosen then)."""
    import numba

    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel kernel has run yet: the layer is not known
        return False
