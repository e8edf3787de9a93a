"""The front door's side of the cluster: keeps an actor per unit of GPU, places and tracks jobs.

``RayDispatcher`` is the server's worker pool (jobs/pool.py) under ``serve --ray``. One thread
(``_loop``) does everything Ray: every few seconds it looks for nodes offering the worker
resource and makes sure each unit has its actor (named and detached, so a restarted front door
finds them again, models still loaded; ``attach`` cancels what the old front door left
running, which the job store's recovery has requeued). It claims queued jobs from the
SQLite queue only while an actor is free, places each by jobs/placement.py, sends the inputs
through the object store, and reads each job's stream: progress to the queue (and on to
clients), cancel forwarded to the actor, the outcome recorded. An actor that dies (its node
lost) has its job put back in the queue by the local crash rule (``retry_after_crash``:
attempts counted, ``interrupted`` after two). At shutdown running jobs are cancelled on their
actors and requeued without counting the attempt, as locally.

``on_event(name, fields)`` is the hook for metrics and logs (observe.py): ``actor_ready``
(actor, where, loaded, loaded_mb), ``actor_lost`` (actor, where, why), ``job_placed`` (actor,
model, model_loaded), ``model_cache`` (actor, where, event: a ``CacheEvent`` the actor's cache
sent while it ran a job), ``job_finished`` (actor, outcome, seconds). What an actor logs while
it runs a job comes back in the job's stream and goes into this process's log with the job id
(actor_logs.py). ``health`` lists the actors, each with how often it was recreated.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from backend.cancellation import CancelToken
from backend.cluster.actor import actor_class
from backend.cluster.actor_logs import relog
from backend.jobs.placement import ActorView, place
from backend.jobs.queue import JobQueue
from backend.jobs.runner import JobOutput, error_from_exception
from backend.jobs.store import JobRecord
from backend.models.registry import ModelRegistry
from shared_protocol.errors import ErrorInfo
from shared_protocol.messages import WorkerHealth

log = logging.getLogger(__name__)

NAMESPACE = "dreamcad"
SCAN_INTERVAL_S = 2.0  # how often new or lost nodes are looked for
WAIT_S = 0.05  # the longest a progress item or a cancel waits in the loop

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass
class _Slot:
    """One actor: where it is, what it holds, and the job it runs."""

    name: str
    node_id: str
    handle: Any
    ready_ref: Any
    label: str = ""
    ready: bool = False
    loaded: tuple[str, ...] = ()
    jobs_run: int = 0
    job_id: str | None = None
    stream: Any = None
    token: CancelToken | None = None
    cancel_sent: bool = False
    started: float = 0.0
    last_error: str = ""
    model: str = ""


class RayDispatcher:
    def __init__(
        self,
        queue: JobQueue,
        registry: ModelRegistry,
        stop: threading.Event,
        *,
        resource: str = "GPU",
        budget_mb: int | None = None,
        weights_paths: dict[str, str] | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._stop = stop
        self._resource = resource
        self._device = "cuda:0" if resource == "GPU" else "cpu"  # Ray masks the other GPUs
        self._budget_mb = budget_mb
        self._weights_paths = dict(weights_paths or {})
        self._on_event = on_event or (lambda name, fields: None)
        self._slots: dict[str, _Slot] = {}
        # By actor name, across its incarnations: a lost actor whose node is still there is
        # recreated under the same name, and ping counts that as a restart.
        self._restarts: dict[str, int] = {}
        self._last_errors: dict[str, str] = {}
        self._lock = threading.Lock()  # the slots, between the loop and health()
        self._thread: threading.Thread | None = None
        self._fatal_error = ""
        self._actor_class = actor_class()

    # --- WorkerPool -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ray-dispatcher", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Restart the dispatcher thread if a bug ended it (jobs it held stay with actors)."""
        if self._stop.is_set() or self._thread is None or self._thread.is_alive():
            return
        log.error("the Ray dispatcher died (%s); starting it again", self._fatal_error)
        self.start()

    def health(self) -> tuple[WorkerHealth, ...]:
        with self._lock:
            slots = list(self._slots.values())
        return tuple(
            WorkerHealth(
                device=slot.label or slot.name,
                alive=slot.ready,
                job_id=slot.job_id,
                restarts=self._restarts.get(slot.name, 0),
                last_error=slot.last_error or self._fatal_error,
            )
            for slot in slots
        )

    def workers(self) -> tuple[()]:
        """No local worker threads: the models live in the actors (the shelf's load and release
        do not reach a farm yet)."""
        return ()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            next_scan = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_scan:
                    self._scan_nodes()
                    next_scan = time.monotonic() + SCAN_INTERVAL_S
                self._collect_ready_actors()
                self._place_jobs()
                self._forward_cancels()
                self._read_streams()
            self._interrupt_running()
        except BaseException as error:  # a bug: check() restarts the loop
            self._fatal_error = f"{type(error).__name__}: {error}"
            log.critical("Ray dispatcher failed", exc_info=error)

    def _scan_nodes(self) -> None:
        """An actor for each unit of the resource on each live node; forget lost nodes' idle
        actors (a running one's loss shows in its stream)."""
        alive = {}
        for node in ray.nodes():
            units = int(node.get("Resources", {}).get(self._resource, 0))
            if node.get("Alive") and units > 0:
                alive[node["NodeID"]] = units
        for node_id, units in alive.items():
            for unit in range(units):
                name = f"worker-{self._resource}-{node_id[:16]}-{unit}"
                if name not in self._slots:
                    self._add_actor(name, node_id)
        for slot in list(self._slots.values()):
            if slot.node_id not in alive and slot.job_id is None:
                self._lose(slot, "its node left the cluster")

    def _add_actor(self, name: str, node_id: str) -> None:
        resources = (
            {"num_gpus": 1} if self._resource == "GPU" else {"resources": {self._resource: 1}}
        )
        handle = self._actor_class.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",  # outlives this front door: a restart finds it, models loaded
            get_if_exists=True,
            max_restarts=0,  # bound to its node: a lost node's jobs are requeued instead
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            **resources,
        ).remote(self._device, self._budget_mb, self._weights_paths)
        with self._lock:
            if name in self._restarts:
                self._restarts[name] += 1
            else:
                self._restarts[name] = 0
            self._slots[name] = _Slot(name, node_id, handle, handle.attach.remote(),
                                      last_error=self._last_errors.get(name, ""))

    def _collect_ready_actors(self) -> None:
        pending = {slot.ready_ref: slot for slot in self._slots.values() if not slot.ready}
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:
            slot = pending[ref]
            try:
                info = ray.get(ref)
            except ray.exceptions.RayError as error:
                self._lose(slot, f"it did not start: {error}")
                continue
            slot.ready = True
            slot.label = f"{info['node']}:{info['device']}"
            slot.loaded = tuple(info["loaded"])
            log.info("Ray worker %s ready on %s", slot.name, slot.label)
            self._on_event("actor_ready", {"actor": slot.name, "where": slot.label,
                                           "loaded": slot.loaded,
                                           "loaded_mb": self._view(slot).loaded_mb})

    def _place_jobs(self) -> None:
        while not self._stop.is_set():
            views = [self._view(slot) for slot in self._slots.values() if slot.ready]
            if not any(not view.busy for view in views):
                return
            claimed = self._queue.claim(timeout_s=0)
            if claimed is None:
                return
            record, token = claimed
            try:
                needed = self._registry.adapter_class(record.model).vram_mb
            except Exception:  # an unknown model: the actor's run reports it with its code
                needed = 0
            placement = place(views, record.model, needed)
            assert placement is not None  # a free actor exists (checked above, same thread)
            self._submit(self._slots[placement.actor], record, token, placement.model_loaded)

    def _submit(self, slot: _Slot, record: JobRecord, token: CancelToken, hit: bool) -> None:
        job_id = record.job_id
        try:
            spec = self._queue.spec(record)
            inputs = self._queue.store.job_dir(job_id) / "inputs"
            images = [ray.put((inputs / image.file).read_bytes()) for image in spec.images]
        except Exception as error:
            info, _ = error_from_exception(error)
            self._queue.fail(job_id, info)
            return
        slot.stream = slot.handle.run.options(num_returns="streaming").remote(
            job_id, spec.to_json(), images
        )
        slot.job_id, slot.token, slot.cancel_sent = job_id, token, False
        slot.started, slot.model = time.monotonic(), record.model
        log.info("job %s: %s placed on %s (model %s)", job_id, record.model, slot.label,
                 "loaded" if hit else "to load")
        self._on_event("job_placed", {"job_id": job_id, "actor": slot.name,
                                      "model": record.model, "model_loaded": hit})

    def _forward_cancels(self) -> None:
        for slot in self._slots.values():
            if slot.token is not None and slot.token.cancelled and not slot.cancel_sent:
                slot.handle.cancel.remote(slot.job_id)
                slot.cancel_sent = True

    def _read_streams(self) -> None:
        running = {slot.stream: slot for slot in self._slots.values() if slot.stream is not None}
        if not running:
            self._stop.wait(WAIT_S)
            return
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=WAIT_S)
        for stream in ready:
            slot = running[stream]
            try:
                item = ray.get(next(stream))
            except StopIteration:
                self._actor_died(slot, "the job's stream ended without an outcome")
            except RayTaskError as error:  # a bug in the actor's own code: the job fails
                self._fail_on_bug(slot, error)
            except ray.exceptions.RayError as error:  # the actor or its node is gone
                self._actor_died(slot, f"{type(error).__name__}: {error}")
            else:
                self._handle(slot, item)

    def _fail_on_bug(self, slot: _Slot, error: Exception) -> None:
        info, _ = error_from_exception(error)
        job_id = slot.job_id
        self._end(slot, "failed", lambda: self._queue.fail(job_id, info))

    def _handle(self, slot: _Slot, item: tuple) -> None:
        job_id = slot.job_id
        kind = item[0]
        if kind == "progress":
            self._queue.report_progress(job_id, item[1], item[2])
            return
        if kind == "log":
            relog(job_id, item[1], item[2], item[3], slot.label)
            return
        if kind == "cache":
            self._on_event("model_cache", {"job_id": job_id, "actor": slot.name,
                                           "where": slot.label, "event": item[1]})
            return
        slot.loaded = tuple(item[-1])
        if kind == "succeeded":
            output: JobOutput = item[1]
            self._end(slot, "succeeded", lambda: self._queue.succeed(
                job_id, output.manifest, output.asset, output.preview, output.extra_files))
            return
        info: ErrorInfo = item[1]
        cancelled: bool = item[2]
        if cancelled and self._queue.was_interrupted(job_id):
            self._end(slot, "requeued", lambda: self._queue.requeue(job_id))
        else:
            outcome = "cancelled" if cancelled else "failed"
            self._end(slot, outcome, lambda: self._queue.fail(job_id, info, cancelled=cancelled))

    def _end(self, slot: _Slot, outcome: str, record: Callable[[], None]) -> None:
        """Record a job's outcome (a failure to record it fails the job), free the actor."""
        job_id = slot.job_id
        try:
            record()
        except Exception as error:
            info, _ = error_from_exception(error)
            log.warning("job %s: its outcome could not be recorded: %s", job_id, info.describe())
            try:
                self._queue.fail(job_id, info)
            except Exception:  # left running: the next start's recovery requeues it
                log.exception("job %s: its failure could not be recorded either", job_id)
        seconds = time.monotonic() - slot.started
        log.info("job %s %s on %s in %.2f s", job_id, outcome, slot.label, seconds)
        self._on_event("job_finished", {"job_id": job_id, "actor": slot.name,
                                        "model": slot.model, "outcome": outcome,
                                        "seconds": seconds})
        slot.jobs_run += 1
        slot.job_id, slot.stream, slot.token = None, None, None

    def _actor_died(self, slot: _Slot, why: str) -> None:
        job_id = slot.job_id
        state = self._queue.retry_after_crash(job_id) if job_id else ""
        log.warning("Ray worker %s on %s lost (%s)%s", slot.name, slot.label, why,
                    f"; job {job_id} is now {state}" if job_id else "")
        self._lose(slot, why)

    def _lose(self, slot: _Slot, why: str) -> None:
        with self._lock:
            self._slots.pop(slot.name, None)
            self._last_errors[slot.name] = why
        with contextlib.suppress(Exception):  # already gone with its node
            ray.kill(slot.handle)  # free the name for a new actor if the node is still there
        self._on_event("actor_lost", {"actor": slot.name, "where": slot.label, "why": why})

    def _interrupt_running(self) -> None:
        """Shutdown: cancel jobs on their actors; requeue them (the attempt does not count)."""
        for slot in self._slots.values():
            if slot.job_id is None:
                continue
            slot.handle.cancel.remote(slot.job_id)
            try:
                self._queue.requeue(slot.job_id)
            except Exception as error:  # left running: the next start's recovery requeues it
                log.warning("job %s: not requeued at shutdown: %s", slot.job_id, error)

    def _view(self, slot: _Slot) -> ActorView:
        loaded_mb = 0
        for model in slot.loaded:
            try:
                loaded_mb += self._registry.adapter_class(model).vram_mb
            except Exception:  # a model this front door does not know: count it as free
                continue
        return ActorView(name=slot.name, busy=slot.job_id is not None, loaded=slot.loaded,
                         loaded_mb=loaded_mb, budget_mb=self._budget_mb, jobs_run=slot.jobs_run)
