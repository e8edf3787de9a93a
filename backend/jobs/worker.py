"""One worker thread per device: claims the next queued job, runs it, records the outcome.

Each worker owns its device's ModelCache, so models stay loaded between jobs. torch releases
the GIL during kernels, so threads (not processes) are enough to keep several GPUs busy while
the server thread stays responsive.
"""

from __future__ import annotations

import logging
import threading

from backend.cancellation import CancelToken
from backend.images import decode_image
from backend.jobs.queue import JobQueue
from backend.jobs.runner import error_from_exception, run_job
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobRecord
from backend.models.base import ImagePixels
from backend.models.registry import ModelCache, ModelRegistry
from shared_protocol.errors import ErrorCode

log = logging.getLogger(__name__)


class Worker(threading.Thread):
    def __init__(
        self,
        queue: JobQueue,
        registry: ModelRegistry,
        device: str,
        stop: threading.Event,
        budget_mb: int | None = None,
    ) -> None:
        super().__init__(name=f"worker-{device}", daemon=True)
        self.queue = queue
        self.device = device
        self.cache = ModelCache(registry, device, budget_mb)
        self._stop_event = stop

    def run(self) -> None:
        log.info("worker on %s ready", self.device)
        while not self._stop_event.is_set():
            claimed = self.queue.claim(timeout_s=0.5)
            if claimed is not None:
                self.run_one(*claimed)
        self.cache.clear()

    def run_one(self, record: JobRecord, token: CancelToken) -> None:
        job_id = record.job_id
        log.info(
            "job %s: %s on %s (attempt %d)", job_id, record.model, self.device, record.attempts
        )
        try:
            spec = self.queue.spec(record)
            output = run_job(
                self.cache,
                spec,
                stored_images(record, self.queue, spec),
                lambda progress, preview: self.queue.report_progress(job_id, progress, preview),
                token,
            )
        except Exception as error:
            info, cancelled = error_from_exception(error)
            if info.code == ErrorCode.CUDA_OUT_OF_MEMORY.value:
                self.cache.clear()  # start the next job from an empty device
            log.info(
                "job %s %s: %s", job_id, "cancelled" if cancelled else "failed", info.describe()
            )
            self.queue.fail(job_id, info, cancelled=cancelled)
            return
        self.queue.succeed(job_id, output.manifest, output.asset, output.preview)
        log.info("job %s done: %d faces", job_id, output.manifest.faces)


def stored_images(record: JobRecord, queue: JobQueue, spec: JobSpec) -> tuple[ImagePixels, ...]:
    """The job's input images, decoded from the files admission kept."""
    inputs = queue.store.job_dir(record.job_id) / "inputs"
    return tuple(
        ImagePixels(
            pixels=decode_image((inputs / image.file).read_bytes(), f"images[{i}]")[0],
            view=image.view,
        )
        for i, image in enumerate(spec.images)
    )
