"""Placement for the local worker threads: which queued job a free device's worker claims.

Every worker of a ``WorkerSupervisor`` claims through one ``DevicePlacer``. A claim runs
``placement.assign`` over the workers waiting for a job right now (their loaded models, their
budgets) and the front of the queue, under the queue's lock, and takes the job assigned to the
claiming worker; jobs assigned to the others wake them. A job claimed ahead of others passes
them over; a job passed over ``max_passes`` times is overdue and placed before any affinity, so
reordering for affinity delays a job by a bounded number of jobs. ``stats`` counts, per worker,
the jobs it took and how many found their model already loaded (affinity hits).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.cancellation import CancelToken
from backend.jobs.placement import ActorView, QueuedJob, assign
from backend.jobs.store import JobRecord
from backend.models.registry import ModelRegistry

if TYPE_CHECKING:
    from backend.jobs.worker import Worker

log = logging.getLogger(__name__)

MAX_PASSES = 8  # a queued job is overtaken at most this many times before it goes first


@dataclass
class WorkerStats:
    jobs: int = 0
    affinity_hits: int = 0  # jobs whose model the worker held when it took them


class DevicePlacer:
    """Shared by the workers of one supervisor; thread-safe."""

    def __init__(self, registry: ModelRegistry, max_passes: int = MAX_PASSES) -> None:
        self._registry = registry
        self._max_passes = max_passes
        self._lock = threading.Lock()
        self._workers: Callable[[], Sequence[Worker]] = tuple
        self._waiting: set[str] = set()
        self._passes: Counter[str] = Counter()
        self._stats: dict[str, WorkerStats] = {}

    def attach(self, workers: Callable[[], Sequence[Worker]]) -> None:
        """Where the current workers come from (the supervisor's live worker per device)."""
        self._workers = workers

    def claim(self, worker: Worker, timeout_s: float) -> tuple[JobRecord, CancelToken] | None:
        """``worker``'s claim: wait up to ``timeout_s`` for the job placement gives it."""
        with self._lock:
            self._waiting.add(worker.label)
        try:
            return worker.queue.claim(timeout_s, pick=lambda rows: self._pick(worker, rows))
        finally:
            with self._lock:
                self._waiting.discard(worker.label)

    def stats(self) -> dict[str, WorkerStats]:
        with self._lock:
            return {label: WorkerStats(s.jobs, s.affinity_hits) for label, s in self._stats.items()}

    def _pick(self, worker: Worker, rows: list[tuple[str, str, int]]) -> str | None:
        if not rows:
            return None
        with self._lock:
            views = [self._view(w) for w in self._workers() if w.is_alive() or w is worker]
            jobs = [
                QueuedJob(job_id, model, priority, self._needed_mb(model),
                          self._passes[job_id] >= self._max_passes)
                for job_id, model, priority in rows
            ]  # fmt: skip
            given = assign(views, jobs)
            mine = given.get(worker.label)
            if mine is None:
                others = bool(given)
            else:
                others = len(given) > 1
                self._took(worker.label, mine.actor, mine.model_loaded, [r[0] for r in rows])
        if others:
            worker.queue.wake_all()  # under the queue's (reentrant) lock: they choose next
        return None if mine is None else mine.actor

    def _took(self, label: str, job_id: str, hit: bool, order: list[str]) -> None:
        for ahead in order[: order.index(job_id)]:
            self._passes[ahead] += 1
        self._passes.pop(job_id, None)
        live = set(order)
        for gone in [j for j in self._passes if j not in live]:
            del self._passes[gone]  # claimed, cancelled or deleted meanwhile
        stats = self._stats.setdefault(label, WorkerStats())
        stats.jobs += 1
        stats.affinity_hits += hit

    def _view(self, worker: Worker) -> ActorView:
        stats = self._stats.get(worker.label, WorkerStats())
        if worker.label not in self._waiting:
            return ActorView(worker.label, busy=True, budget_mb=worker.cache.budget_mb)
        loaded = tuple(worker.cache.loaded())  # a waiting worker's cache does not change
        return ActorView(
            worker.label,
            busy=False,
            loaded=loaded,
            loaded_mb=sum(self._needed_mb(model) for model in loaded),
            budget_mb=worker.cache.budget_mb,
            jobs_run=stats.jobs,
        )

    def _needed_mb(self, model: str) -> int:
        try:
            return self._registry.adapter_class(model).vram_mb
        except Exception:  # an unknown model: its run fails with the code that says so
            return 0
