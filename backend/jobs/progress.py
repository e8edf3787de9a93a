"""Turns (stage, step, total) reports from a model and the pipeline into one progress bar.

A job runs through phases (loading the model, the model's own stages, the geometry pipeline's
stages). Each stage gets a share of the bar from declared weights; a stage no one declared gets
an even share of what is left in its phase. The fraction never goes backwards, and the ETA is
the elapsed time scaled by what is left, once enough is done to say.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from shared_protocol.messages import Progress

MODEL_PHASE = (0.0, 0.7)  # share of the bar for loading + the model's stages
PIPELINE_PHASE = (0.7, 1.0)
PIPELINE_STAGE_WEIGHTS = {"clean": 0.1, "decimate": 0.25, "uv": 0.2, "bake": 0.3, "export": 0.15}


class ProgressTracker:
    """Map stage-local steps to a job-wide fraction and ETA."""

    def __init__(self, model_stage_weights: Mapping[str, float] | None = None) -> None:
        self._weights = {
            "model": dict(model_stage_weights or {}),
            "pipeline": dict(PIPELINE_STAGE_WEIGHTS),
        }
        self._phases = {"model": MODEL_PHASE, "pipeline": PIPELINE_PHASE}
        self._started = time.monotonic()
        self._fraction = 0.0

    def update(self, phase: str, stage: str, step: int, total: int, message: str = "") -> Progress:
        start, end = self._phases[phase]
        weights = self._weights[phase]
        if stage not in weights:
            # An undeclared stage takes an even share of what the phase has not handed out.
            left = max(0.0, 1.0 - sum(weights.values()))
            weights[stage] = left / 2 if left > 0 else 0.0
        offset = 0.0
        for name, weight in weights.items():
            if name == stage:
                break
            offset += weight
        local = min(1.0, step / total) if total > 0 else 0.0
        span = sum(weights.values()) or 1.0
        fraction = start + (end - start) * (offset + weights[stage] * local) / max(span, 1.0)
        self._fraction = min(1.0, max(self._fraction, fraction))
        elapsed = time.monotonic() - self._started
        eta = elapsed / self._fraction * (1.0 - self._fraction) if self._fraction >= 0.02 else None
        return Progress(
            stage=stage,
            step=step,
            total=total,
            fraction=round(self._fraction, 4),
            eta_s=None if eta is None else round(eta, 2),
            message=message,
        )
