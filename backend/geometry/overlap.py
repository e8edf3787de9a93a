"""Run one call on a second thread while the caller carries on, and collect its answer later.

For work the pipeline knows early but needs late, run beside a serial stretch that leaves the
other core idle: the answer is the same as calling it in place (same function, same inputs),
only the time moves. Worth it only for calls whose heavy part lets go of the GIL (a ``nogil``
kernel, zlib), which runs while the main thread is in a ``nogil`` kernel or numpy of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Beside(Generic[T]):
    """``function(*args)`` started on a daemon thread; :meth:`result` waits for its value or
    raises what it raised."""

    def __init__(self, function: Callable[..., T], *args: Any, name: str = "beside") -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(function, args), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, function: Callable[..., T], args: tuple) -> None:
        try:
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


def kernels_threadsafe() -> bool:
    """Whether parallel numba kernels may run on two threads at once: numba's ``omp`` and ``tbb``
    threading layers allow it; ``workqueue`` aborts the process if it happens. False until the
    process has run a parallel kernel (the layer is chosen then)."""
    import numba

    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel kernel has run yet: the layer is not known
        return False
