"""The diffusers step hook on a real (tiny) pipeline-like object, and the typed errors."""

from __future__ import annotations

import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.models.common.pipeline_hooks import (
    StepReporter,
    report_steps,
)


class LoopingPipeline:
    """Walks its loop both ways diffusers pipelines do."""

    def progress_bar(self, iterable=None, total=None):  # replaced by the hook
        raise AssertionError("hook not installed")

    def run_iterable(self, steps: int) -> int:
        return sum(1 for _ in self.progress_bar(range(steps)))

    def run_context(self, steps: int) -> int:
        with self.progress_bar(total=steps) as bar:
            for _ in range(steps):
                bar.update()
        return steps


def test_both_loop_styles_report_every_step_then_restore() -> None:
    pipeline = LoopingPipeline()
    calls: list[tuple[str, int, int]] = []
    with report_steps(pipeline, "denoise", lambda s, i, n, *a: calls.append((s, i, n)),
                      CancelToken()):
        pipeline.run_iterable(3)
        pipeline.run_context(2)
    assert calls == [("denoise", 1, 3), ("denoise", 2, 3), ("denoise", 3, 3),
                     ("denoise", 1, 2), ("denoise", 2, 2)]
    with pytest.raises(AssertionError, match="hook not installed"):
        pipeline.run_iterable(1)


def test_cancel_stops_at_the_next_step() -> None:
    token = CancelToken()
    seen: list[int] = []

    def progress(stage: str, step: int, total: int, *rest) -> None:
        seen.append(step)
        if step == 2:
            token.cancel()

    reporter = StepReporter(range(5), None, "x", progress, token)
    with pytest.raises(Cancelled):
        list(reporter)
    assert seen == [1, 2]
