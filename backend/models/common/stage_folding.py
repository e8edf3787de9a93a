"""Fold a nested model's multi-stage progress into one stage of the outer job.

A composite adapter (text -> image -> 3D) runs another adapter inside one of its own stages.
The job's bar knows only the outer stages, so :class:`FoldedProgress` maps the inner
adapter's (stage, step, total) reports onto a single outer stage counted in per-mille, using
the inner adapter's declared ``stage_weights`` (undeclared inner stages share what is left).
The mapped position never goes backwards.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backend.models.base import ProgressCallback

RESOLUTION = 1000


class FoldedProgress:
    """A ``ProgressCallback`` for the inner adapter that reports to ``outer`` under ``stage``."""

    def __init__(
        self, outer: ProgressCallback, stage: str, inner_weights: Mapping[str, float]
    ) -> None:
        self._outer = outer
        self._stage = stage
        self._weights = dict(inner_weights)
        self._position = 0

    def _span(self, inner_stage: str) -> tuple[float, float]:
        if inner_stage not in self._weights:
            left = max(0.0, 1.0 - sum(self._weights.values()))
            self._weights[inner_stage] = left / 2 if left > 0 else 0.0
        total = sum(self._weights.values()) or 1.0
        offset = 0.0
        for name, weight in self._weights.items():
            if name == inner_stage:
                return offset / max(total, 1.0), weight / max(total, 1.0)
            offset += weight
        raise AssertionError("unreachable")

    def __call__(
        self,
        stage: str,
        step: int,
        total: int,
        message: str = "",
        preview: np.ndarray | None = None,
    ) -> None:
        offset, width = self._span(stage)
        local = min(1.0, step / total) if total > 0 else 0.0
        position = int(RESOLUTION * (offset + width * local))
        self._position = max(self._position, min(position, RESOLUTION))
        self._outer(self._stage, self._position, RESOLUTION, message or stage, preview)

    def finish(self, message: str = "") -> None:
        self._position = RESOLUTION
        self._outer(self._stage, RESOLUTION, RESOLUTION, message)
