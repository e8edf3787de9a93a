"""Make any diffusers pipeline report progress and honour cancellation.

diffusers pipelines walk their denoising loop through ``self.progress_bar(...)``, either as an
iterable (``for t in self.progress_bar(timesteps)``, Shap-E) or as a context manager with
``update()`` (Stable Diffusion and most others). :func:`report_steps` swaps that method on one
pipeline instance for a :class:`StepReporter`, which forwards each step to our
``ProgressCallback`` and raises ``Cancelled`` at the next step after a cancel: one hook that
works for every pipeline, including ones without ``callback_on_step_end``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback

# Maps a pipeline-local step count onto the job's overall bar: (step, total) -> reported.
StepMapper = Callable[[int, int], tuple[int, int]]


class StepReporter:
    """Stands in for tqdm inside a pipeline: iterable and context manager with ``update``."""

    def __init__(
        self,
        iterable: Iterable[Any] | None,
        total: int | None,
        stage: str,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> None:
        self._iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = int(total or 0)
        self.step = 0
        self._stage = stage
        self._progress = progress
        self._cancel = cancel

    def __iter__(self) -> Iterator[Any]:
        if self._iterable is None:
            raise TypeError("StepReporter made without an iterable cannot be iterated")
        for item in self._iterable:
            self._cancel.raise_if_cancelled()
            yield item
            self.update()

    def update(self, count: int = 1) -> None:
        self.step += count
        self._progress(self._stage, self.step, max(self.total, self.step))
        self._cancel.raise_if_cancelled()

    def __enter__(self) -> StepReporter:
        self._cancel.raise_if_cancelled()
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


@contextlib.contextmanager
def report_steps(
    pipeline: Any, stage: str, progress: ProgressCallback, cancel: CancelToken
) -> Iterator[None]:
    """Within the block, ``pipeline``'s denoising steps go to ``progress`` under ``stage``."""

    def progress_bar(iterable: Iterable[Any] | None = None, total: int | None = None):
        return StepReporter(iterable, total, stage, progress, cancel)

    had_own = "progress_bar" in vars(pipeline)
    previous = vars(pipeline).get("progress_bar")
    pipeline.progress_bar = progress_bar
    try:
        yield
    finally:
        if had_own:
            pipeline.progress_bar = previous
        else:
            del pipeline.progress_bar
