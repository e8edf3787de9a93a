"""When the backend compiles its hot torch code (``torch.compile``): one policy for all of it.

``DREAMCAD_COMPILE``: ``auto`` (default: on for a CUDA device when Triton is installed; on the
CPU compiling costs more than it gives and CI would pay it), ``1`` (always), ``0`` (never). The
first call of compiled code pays the compilation; inductor's on-disk cache shortens later starts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from backend import job_priority

log = logging.getLogger(__name__)

COMPILE_ENV = "DREAMCAD_COMPILE"
OFF = ("0", "false", "no", "off")  # how a DREAMCAD_COMPILE* switch says no


# dynamo's tracing state is process-wide: a compiled function entered on one thread while another
# thread compiles (inductor traces its graphs with torch.fx) raises "Detected that you are using
# FX to symbolically trace a dynamo-optimized function". Seen on a GPU server when the start-up
# warm-up compiled the decimator while the first job ran. So compiled calls take turns, across
# threads (re-entrant: a compiled call may run another); eager fallbacks run freely. Their host
# side holds the GIL anyway; what the turns add is a wait while another thread compiles.
# Background work (the warm-up) takes no new turn while a job runs (job_priority.py).
class CompiledCallTurns:
    """A re-entrant lock on compiled calls that background threads take only between jobs."""

    def __init__(self) -> None:
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        with job_priority.CHANGED:
            if self._owner != me:  # a nested call never waits: its thread holds the turn
                job_priority.CHANGED.wait_for(
                    lambda: self._owner is None and not job_priority.must_give_way()
                )
                self._owner = me
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with job_priority.CHANGED:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                job_priority.CHANGED.notify_all()


COMPILED_CALLS = CompiledCallTurns()


def should_compile(device: Any) -> bool:
    """The ``DREAMCAD_COMPILE`` policy for code running on ``device`` (a str or torch.device)."""
    choice = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    if choice in OFF:
        return False
    if choice in ("1", "true", "yes", "on"):
        return True
    import torch  # only torch code asks

    if torch.device(device).type != "cuda":
        return False
    from torch.utils._triton import has_triton  # Triton ships with torch's Linux CUDA wheels

    return has_triton()


def compile_or_eager(compiled: Callable[..., Any], eager: Callable[..., Any], name: str) -> Any:
    """``compiled`` until it first works; if it fails before that (no C compiler for Triton,
    an inductor bug on this torch), log why and run ``eager`` from then on: a machine that
    cannot compile loses speed, never a job. Out-of-memory is the job's, not the compiler's."""
    import torch

    state = {"use": compiled, "proven": False}

    def run(*args: Any, **kwargs: Any) -> Any:
        if state["use"] is eager:
            return eager(*args, **kwargs)
        with COMPILED_CALLS:
            return state["use"](*args, **kwargs)

    def call(*args: Any, **kwargs: Any) -> Any:
        if state["proven"]:
            return run(*args, **kwargs)
        try:
            result = run(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # any compile failure: fall back, say why
            if state["use"] is eager:
                raise
            log.warning(
                "torch.compile of %s failed, running it eagerly: %s: %s (set %s=0 to skip it)",
                name, type(error).__name__, error, COMPILE_ENV,
            )  # fmt: skip
            state["use"] = eager
            return eager(*args, **kwargs)
        state["proven"] = True
        return result

    return call
