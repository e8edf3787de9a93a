"""Per-model figures over finished jobs: counts, success rate, stage times, GPU-seconds, failures.

Read from job rows (store.py), so they cover every job the store recorded, wherever it ran.
A job's stage times are its manifest's ``timings_s`` (``load``, ``generate``, ``pipeline.*``,
written by the runner) plus three taken from the row: ``queue`` (submit to start), ``run``
(start to end: the time it held its worker's device, what GPU-seconds add up) and ``total``
(submit to end, what the artist waited). Percentiles are over succeeded jobs (a failure's times
describe how far it got, not how long the stage takes); GPU-seconds count every job that
started, failed and cancelled ones included. ``success_rate`` is succeeded over succeeded plus
failed: a cancelled job is the artist's choice, not a failure. Used by ``dreamcad-backend stats``
and, one job at a time, by the metrics (backend/metrics.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from backend.jobs.store import JobRecord

QUEUE_STAGE = "queue"
RUN_STAGE = "run"
TOTAL_STAGE = "total"
FINISHED_STATES = ("succeeded", "failed", "cancelled")


def device_seconds(record: JobRecord) -> float:
    """How long the job held its worker's device (0 for one that never started)."""
    if record.started_at is None or record.finished_at is None:
        return 0.0
    return max(0.0, record.finished_at - record.started_at)


def stage_seconds(record: JobRecord) -> dict[str, float]:
    """Seconds per stage of one finished job: queue, the manifest's stages, run, total."""
    times: dict[str, float] = {}
    if record.started_at is not None:
        times[QUEUE_STAGE] = max(0.0, record.started_at - record.created_at)
    for stage, seconds in ((record.manifest or {}).get("timings_s") or {}).items():
        times[stage] = float(seconds)
    if record.started_at is not None and record.finished_at is not None:
        times[RUN_STAGE] = device_seconds(record)
    if record.finished_at is not None:
        times[TOTAL_STAGE] = max(0.0, record.finished_at - record.created_at)
    return times


def error_code(record: JobRecord) -> str:
    return str((record.error or {}).get("code") or "unknown")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1): always one of the values measured."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class StageStats:
    count: int
    p50_s: float
    p95_s: float


@dataclass
class ModelStats:
    """One model's figures over the jobs given."""

    model: str
    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    gpu_seconds: float = 0.0
    stages: dict[str, StageStats] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # error code -> failed jobs

    @property
    def success_rate(self) -> float | None:
        decided = self.succeeded + self.failed
        return self.succeeded / decided if decided else None

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "jobs": self.jobs,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "success_rate": self.success_rate,
            "gpu_seconds": round(self.gpu_seconds, 3),
            "stages": {
                name: {"count": s.count, "p50_s": round(s.p50_s, 4), "p95_s": round(s.p95_s, 4)}
                for name, s in self.stages.items()
            },
            "failures": dict(self.failures),
        }


def model_stats(records: Iterable[JobRecord]) -> list[ModelStats]:
    """Figures per model over the finished jobs among ``records``, models in name order."""
    by_model: dict[str, ModelStats] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for record in records:
        if record.state not in FINISHED_STATES:
            continue
        stats = by_model.setdefault(record.model, ModelStats(record.model))
        stats.jobs += 1
        stats.gpu_seconds += device_seconds(record)
        if record.state == "succeeded":
            stats.succeeded += 1
            for stage, seconds in stage_seconds(record).items():
                samples.setdefault(record.model, {}).setdefault(stage, []).append(seconds)
        elif record.state == "failed":
            stats.failed += 1
            code = error_code(record)
            stats.failures[code] = stats.failures.get(code, 0) + 1
        else:
            stats.cancelled += 1
    for model, stages in samples.items():
        by_model[model].stages = {
            stage: StageStats(len(values), percentile(values, 0.5), percentile(values, 0.95))
            for stage, values in _ordered(stages).items()
        }
    return [by_model[model] for model in sorted(by_model)]


def _ordered(stages: dict[str, list[float]]) -> dict[str, list[float]]:
    """queue first, run and total last; between them the stages as they first ran, each
    sub-stage (``pipeline.bake.splat``) right after its parent (``pipeline.bake``)."""
    first = [QUEUE_STAGE] if QUEUE_STAGE in stages else []
    last = [name for name in (RUN_STAGE, TOTAL_STAGE) if name in stages]
    middle = [name for name in stages if name not in (*first, *last)]
    children: dict[str, list[str]] = {}
    roots = []
    for name in middle:
        parent = name.rpartition(".")[0]
        if parent in stages and parent != name:
            children.setdefault(parent, []).append(name)
        else:
            roots.append(name)
    nested: list[str] = []

    def place(name: str) -> None:
        nested.append(name)
        for child in children.get(name, []):
            place(child)

    for root in roots:
        place(root)
    return {name: stages[name] for name in (*first, *nested, *last)}
