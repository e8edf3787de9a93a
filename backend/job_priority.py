"""Jobs go first: background work in the backend process gives way while a job runs.

``serve`` compiles the GPU geometry stages on a thread at start-up (geometry/warmup.py), so the
first job does not pay for them. A job that arrives while that thread works must not queue
behind it: measured on an H200, a TripoSR job sent right after start took 32.7 s beside the
warm-up against ~22 s without one, and a later job waited 7 s for one of its compiles. Workers
mark each job (``job_running``); the warm-up thread marks itself (``background``) and waits,
between its steps (``give_way``) and before each compiled call (torch_compile's turns), while
any job runs. A compile already under way cannot be stopped, so a job waits at most for that.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

# One condition for "a job started or ended" and for torch_compile's turns, so that a
# background thread can wait for both in one atomic check.
CHANGED = threading.Condition()
_running = 0
_local = threading.local()


@contextmanager
def job_running() -> Iterator[None]:
    """Mark a job as running on this thread for as long as the block lasts."""
    global _running
    with CHANGED:
        _running += 1
    try:
        yield
    finally:
        with CHANGED:
            _running -= 1
            CHANGED.notify_all()


@contextmanager
def background() -> Iterator[None]:
    """Mark this thread's work as background: it gives way to jobs."""
    _local.background = True
    try:
        yield
    finally:
        _local.background = False


def must_give_way() -> bool:
    """Whether this thread is background work and a job is running (call holding ``CHANGED``)."""
    return _running > 0 and getattr(_local, "background", False)


def give_way(timeout_s: float | None = None) -> bool:
    """Wait while a job runs, if this thread is background work; returns False on timeout."""
    with CHANGED:
        return CHANGED.wait_for(lambda: not must_give_way(), timeout_s)


def jobs_running() -> int:
    """How many jobs are running in this process now."""
    return _running
