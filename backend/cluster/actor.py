"""The Ray actor that runs jobs on one device of one node, with its own model cache.

``GpuWorker`` is what ``worker.Worker`` is locally, minus the queue: the front door's dispatcher
claims jobs and hands them over; the actor runs them (``runner.run_job``, the same code as the
local path, so the asset and manifest are the same) one at a time and streams back what
happens as a Ray generator: ``("progress", Progress, preview)`` items, then one
``("succeeded", JobOutput, loaded)`` or ``("failed", ErrorInfo, cancelled, loaded)``, where
``loaded`` is what its model cache holds afterwards (for placement). Between them come
``("cache", CacheEvent)`` for each model the job loads or unloads (the front door's metrics
count them) and ``("log", level, logger, message)`` for each line logged while it runs (the
front door's log carries them with the job id: actor_logs.py). Every failure of a job
becomes a coded error inside the actor; only the actor's own death (its node lost) reaches the
dispatcher as a Ray error. ``cancel`` runs on another of the actor's threads, so it reaches the
job at its next step. Inputs arrive and results leave through Ray's object store.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray

from backend import logs
from backend.cancellation import CancelToken
from backend.cluster.actor_logs import JobLogForwarder
from backend.images import decode_image
from backend.jobs.runner import error_from_exception, run_job
from backend.jobs.spec import JobSpec
from backend.models.base import ImagePixels
from backend.models.registry import CacheEvent, ModelCache, ModelRegistry
from shared_protocol.errors import ErrorCode

log = logging.getLogger(__name__)

# run, cancel and describe may overlap (cancel must reach a running job); jobs themselves run
# one at a time (``_device_lock``).
ACTOR_THREADS = 4
OUTCOMES = ("succeeded", "failed")  # a job's last item; every other kind comes before it


class GpuWorker:
    """One device's jobs on this node; created by the dispatcher, one per unit of resource."""

    def __init__(self, device: str, budget_mb: int | None, weights_paths: dict[str, str]) -> None:
        registry = ModelRegistry(weights_paths={k: Path(v) for k, v in weights_paths.items()})
        registry.cache_listeners.append(self._on_cache_event)
        self.cache = ModelCache(registry, device, budget_mb)
        # Where the running job's items go; only the job holding ``_device_lock`` sets it, and
        # only that job's thread loads or unloads models.
        self._job_events: queue.Queue[tuple] | None = None
        self._log_forwarder = JobLogForwarder.install()
        self.device = device
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.node = f"{ray.util.get_node_ip_address()}/{self.node_id[:12]}"
        self._tokens: dict[str, CancelToken] = {}
        self._tokens_lock = threading.Lock()
        self._device_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Where this actor is and what it holds (the dispatcher's first call)."""
        return {"node": self.node, "node_id": self.node_id, "device": self.device,
                "loaded": self.cache.loaded()}

    def attach(self) -> dict[str, Any]:
        """A new front door took over: cancel what an earlier one left running (its store
        requeues those jobs), then ``describe``."""
        self.cancel_all()
        return self.describe()

    def cancel(self, job_id: str) -> None:
        with self._tokens_lock:
            token = self._tokens.get(job_id)
        if token is not None:
            token.cancel()

    def cancel_all(self) -> None:
        with self._tokens_lock:
            tokens = list(self._tokens.values())
        for token in tokens:
            token.cancel()

    def run(self, job_id: str, spec_json: dict, images: list) -> Iterator[tuple]:
        """Run one job, yielding its progress and then its outcome (see the module docstring).

        ``images``: ObjectRefs of the encoded input files, in ``spec.images`` order."""
        token = CancelToken()
        with self._tokens_lock:
            self._tokens[job_id] = token
        events: queue.Queue[tuple] = queue.Queue()
        thread = threading.Thread(
            target=self._work, args=(job_id, spec_json, images, token, events),
            name=f"job-{job_id}", daemon=True,
        )
        thread.start()
        try:
            while True:
                item = events.get()
                yield item
                if item[0] in OUTCOMES:
                    return
        finally:
            token.cancel()  # the front door stopped listening: the job has no one to report to
            with self._tokens_lock:
                self._tokens.pop(job_id, None)

    def _work(
        self, job_id: str, spec_json: dict, images: list, token: CancelToken, events: queue.Queue
    ) -> None:
        with (
            self._device_lock,  # one job at a time on the device
            logs.job_context(job_id),
            self._log_forwarder.forwarding(job_id, events),
        ):
            self._job_events = events
            try:
                self._run(job_id, spec_json, images, token, events)
            finally:
                self._job_events = None

    def _run(
        self, job_id: str, spec_json: dict, images: list, token: CancelToken, events: queue.Queue
    ) -> None:
        try:
            spec = JobSpec.from_json(spec_json)
            pixels = tuple(
                ImagePixels(
                    pixels=decode_image(data, f"images[{i}]")[0], view=image.view
                )
                for i, (image, data) in enumerate(zip(spec.images, ray.get(images),
                                                      strict=True))
            )
            log.info("job %s: %s on %s %s", job_id, spec.model, self.node, self.device)
            output = run_job(
                self.cache, spec, pixels,
                lambda progress, preview: events.put(("progress", progress, preview)),
                token, node=self.node,
            )
        except Exception as error:
            info, cancelled = error_from_exception(error)
            if info.code == ErrorCode.CUDA_OUT_OF_MEMORY.value:
                self.cache.clear()  # start the next job from an empty device
            events.put(("failed", info, cancelled, tuple(self.cache.loaded())))
            return
        events.put(("succeeded", output, tuple(self.cache.loaded())))

    def _on_cache_event(self, event: CacheEvent) -> None:
        events = self._job_events
        if events is not None:
            events.put(("cache", event))


def actor_class() -> Any:
    """``GpuWorker`` as a Ray actor class (threaded, so cancel overlaps a running job)."""
    return ray.remote(max_concurrency=ACTOR_THREADS)(GpuWorker)
