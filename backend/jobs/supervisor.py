"""Keeps one live worker per device: starts them, restarts any that dies, reports their health.

A worker handles every failure of a job itself (worker.py), so a dead worker thread means a bug.
The server loop calls ``check`` a few times a second; a worker found dead has its job put back in
the queue once (or failed with ``interrupted`` when it has already been tried twice, the same
rule as crash recovery at start) and a new worker starts on the same device, after a pause that
doubles with each death in a row so a worker that dies at once cannot spin. ``health`` is what
``ping_reply.workers`` reports. Which queued job a free worker claims is the placer's choice
(device_placer.py: affinity to loaded models, no idle worker while a job it may run waits, a model
only on devices whose budget holds it); each device has its own budget (``budget_mb``: one for
all, or one per device).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from backend.jobs.device_placer import DevicePlacer
from backend.jobs.queue import JobQueue
from backend.jobs.worker import Worker
from backend.models.registry import ModelRegistry
from shared_protocol.messages import WorkerHealth

log = logging.getLogger(__name__)

FIRST_RESTART_DELAY_S = 0.0
MAX_RESTART_DELAY_S = 30.0
STABLE_AFTER_S = 60.0  # a worker alive this long resets the pause before the next restart


@dataclass
class _Slot:
    """One device's worker and its history."""

    device: str
    worker: Worker
    started_at: float
    restarts: int = 0
    last_error: str = ""
    restart_delay_s: float = FIRST_RESTART_DELAY_S
    dead_since: float | None = None


class WorkerSupervisor:
    def __init__(
        self,
        queue: JobQueue,
        registry: ModelRegistry,
        devices: list[str] | tuple[str, ...],
        stop: threading.Event,
        budget_mb: int | Sequence[int | None] | None = None,
        placement: bool = True,  # False: every worker claims in queue order (benchmarks compare)
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._devices = tuple(devices)
        self._stop = stop
        self._budgets = device_budgets(budget_mb, len(self._devices))
        self._labels = device_labels(self._devices)
        self._slots: list[_Slot] = []
        self.placer = DevicePlacer(registry)
        self.placer.attach(self.workers)
        self._placement = placement

    def start(self) -> None:
        for index, device in enumerate(self._devices):
            self._slots.append(_Slot(device, self._new_worker(index), time.monotonic()))

    def check(self) -> None:
        """Restart workers that died (server thread, called often; cheap when all is well)."""
        if self._stop.is_set():
            return
        now = time.monotonic()
        for slot in self._slots:
            if slot.worker.is_alive():
                if now - slot.started_at > STABLE_AFTER_S:
                    slot.restart_delay_s = FIRST_RESTART_DELAY_S
                continue
            if slot.dead_since is None:
                self._bury(slot, now)
            if now - slot.dead_since >= slot.restart_delay_s:
                slot.worker = self._new_worker(self._slots.index(slot))
                slot.started_at = now
                slot.dead_since = None
                slot.restarts += 1
                slot.restart_delay_s = min(MAX_RESTART_DELAY_S, max(0.5, slot.restart_delay_s * 2))

    def health(self) -> tuple[WorkerHealth, ...]:
        return tuple(
            WorkerHealth(
                device=slot.device,
                alive=slot.worker.is_alive(),
                job_id=slot.worker.current_job_id,
                restarts=slot.restarts,
                last_error=slot.last_error,
            )
            for slot in self._slots
        )

    def workers(self) -> tuple[Worker, ...]:
        """The live worker of each device (for the model shelf's load, release and states)."""
        return tuple(slot.worker for slot in self._slots)

    def join(self, timeout_s: float) -> None:
        """Wait for the workers to finish their current step, ``timeout_s`` for all together."""
        deadline = time.monotonic() + timeout_s
        for slot in self._slots:
            slot.worker.join(timeout=max(0.0, deadline - time.monotonic()))

    def _bury(self, slot: _Slot, now: float) -> None:
        """A worker died: say so, and settle the job it held."""
        dead = slot.worker
        slot.dead_since = now
        slot.last_error = dead.fatal_error or "the worker thread ended"
        job_id = dead.current_job_id
        log.error(
            "worker on %s died (%s)%s; starting a new one",
            slot.device,
            slot.last_error,
            f" while running job {job_id}" if job_id else "",
            extra={"job_id": job_id},
        )
        try:
            dead.cache.clear()
        except Exception:  # a broken cache must not stop the restart
            log.exception("clearing the dead worker's models failed")
        if job_id is not None:
            try:
                state = self._queue.retry_after_crash(job_id)
                log.warning(
                    "job %s of the dead worker is now %s", job_id, state, extra={"job_id": job_id}
                )
            except Exception:  # the store cannot be written: recovery at next start settles it
                log.exception(
                    "job %s of the dead worker could not be settled", job_id,
                    extra={"job_id": job_id},
                )  # fmt: skip

    def _new_worker(self, index: int) -> Worker:
        worker = Worker(
            self._queue,
            self._registry,
            self._devices[index],
            self._stop,
            self._budgets[index],
            placer=self.placer if self._placement else None,
            label=self._labels[index],
        )
        worker.start()
        return worker


def device_labels(devices: Sequence[str]) -> tuple[str, ...]:
    """A unique name per worker: the device, numbered when it appears more than once."""
    repeated = {d for d in devices if devices.count(d) > 1}
    seen: dict[str, int] = {}
    labels = []
    for device in devices:
        if device in repeated:
            labels.append(f"{device}#{seen.get(device, 0)}")
            seen[device] = seen.get(device, 0) + 1
        else:
            labels.append(device)
    return tuple(labels)


def device_budgets(
    budget_mb: int | Sequence[int | None] | None, count: int
) -> tuple[int | None, ...]:
    """One VRAM budget per device: one value for all, or one per device."""
    if budget_mb is None or isinstance(budget_mb, int):
        return (budget_mb,) * count
    budgets = tuple(budget_mb)
    if len(budgets) == 1:
        return budgets * count
    if len(budgets) != count:
        raise ValueError(f"{len(budgets)} VRAM budgets given for {count} devices")
    return budgets
