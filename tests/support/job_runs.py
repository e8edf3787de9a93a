"""Fill a real job store with jobs run by a real worker thread (the real runner, real SQLite).

For the tests of what is read back from the store (stats, metrics): built-in ``procedural``
jobs that succeed, a ``failing`` model (the procedural one made to fail in its own code, or in
the geometry pipeline) and a job cancelled while queued.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

from backend.jobs.queue import JobQueue
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobStore
from backend.jobs.worker import Worker
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelRegistry, discover_adapters

QUICK = {"resolution": 24, "steps": 4}
MODEL_BUG = "model bug"  # the failing model's prompt for a failure in the model itself


class FailingProcedural(ProceduralAdapter):
    """The procedural model, failing in its own code (``MODEL_BUG``) or else while baking."""

    id = "failing"

    def _generate(self, request, progress, cancel):
        if request.prompt == MODEL_BUG:
            raise RuntimeError("a bug in the model")
        raw = super()._generate(request, progress, cancel)

        def broken_field(points):
            raise ValueError("a bug met while baking")

        return dataclasses.replace(raw, color_field=broken_field, vertex_colors=None)


def registry_with_failing_model() -> ModelRegistry:
    return ModelRegistry({**discover_adapters(), "failing": FailingProcedural})


def spec(model: str = "procedural", prompt: str = "a red torus") -> JobSpec:
    return JobSpec(
        model=model, task="text", prompt=prompt, seed=3, parameters=dict(QUICK),
        target_faces=500, texture_size=256,
    )  # fmt: skip


def open_queue(data_dir: Path) -> JobQueue:
    store = JobStore(data_dir / "jobs.sqlite3", data_dir / "jobs")
    return JobQueue(store, lambda job_id, message: None)


def run_jobs(
    queue: JobQueue, registry: ModelRegistry, specs: list[JobSpec], timeout_s: float = 300
) -> list[str]:
    """Submit ``specs``, run them on one CPU worker thread until all ended; their job ids."""
    job_ids = [queue.submit(job, ())[0].job_id for job in specs]
    stop = threading.Event()
    worker = Worker(queue, registry, "cpu", stop)
    worker.start()
    try:
        deadline = time.monotonic() + timeout_s
        while any(queue.store.get(job_id).state in ("queued", "running") for job_id in job_ids):
            if time.monotonic() > deadline:
                raise TimeoutError("the jobs did not end")
            time.sleep(0.05)
    finally:
        stop.set()
        queue.wake_all()
        worker.join(30)
    return job_ids
