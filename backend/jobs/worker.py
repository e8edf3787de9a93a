"""One worker thread per device: claims the next queued job, runs it, records the outcome.

Each worker owns its device's ModelCache, so models stay loaded between jobs. torch releases
the GIL during kernels, so threads (not processes) are enough to keep several GPUs busy while
the server thread stays responsive.

A worker outlives anything a job does: every failure while running or finishing a job (a full
disk included) ends that job with a coded error, and an outcome the job store cannot take yet
(the disk is full even for SQLite) is kept and recorded once it can, before any new job is
claimed. What still kills the thread is recorded in ``fatal_error`` for the supervisor
(supervisor.py), which starts a new worker. A job cancelled by a shutdown goes back to the queue.
"""

from __future__ import annotations

import logging
import threading

from backend.cancellation import CancelToken
from backend.disk_space import disk_full_error, is_disk_full
from backend.geometry.raw_store import RAW_FILE
from backend.images import decode_image
from backend.job_priority import job_running
from backend.jobs.device_placer import DevicePlacer
from backend.jobs.model_control import ModelControl
from backend.jobs.queue import JobQueue
from backend.jobs.runner import error_from_exception, escaped_exit, run_job
from backend.jobs.sources import job_mesh
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobRecord
from backend.logs import job_context
from backend.models.base import ImagePixels
from backend.models.registry import ModelCache, ModelRegistry
from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError

log = logging.getLogger(__name__)

CLAIM_WAIT_S = 0.5
RETRY_RECORD_S = 1.0  # how often an outcome the store could not take is tried again


class Worker(threading.Thread):
    def __init__(
        self,
        queue: JobQueue,
        registry: ModelRegistry,
        device: str,
        stop: threading.Event,
        budget_mb: int | None = None,
        placer: DevicePlacer | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(name=f"worker-{device}", daemon=True)
        self.queue = queue
        self.device = device
        self.label = label or device  # unique among the supervisor's workers (cpu#0, cpu#1...)
        self.placer = placer  # None: claim in queue order
        self.cache = ModelCache(registry, device, budget_mb)
        self.control = ModelControl(device)  # load/release requests, served between jobs
        self._stop_event = stop
        self.current_job_id: str | None = None
        self.fatal_error: str = ""  # why the thread died, for the supervisor and ping
        # Outcomes the job store could not record yet: (job id, error, cancelled).
        self._unrecorded: list[tuple[str, ErrorInfo, bool]] = []

    def run(self) -> None:
        log.info("worker on %s ready", self.device)
        try:
            self._loop()
        except BaseException as error:  # a bug: the supervisor restarts us
            self.fatal_error = f"{type(error).__name__}: {error}"
            log.critical("worker on %s died", self.device, exc_info=error)
            return
        self.cache.clear()

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            if self._unrecorded and not self._record_pending():
                self._stop_event.wait(RETRY_RECORD_S)
                continue
            self.control.serve(self.cache)
            try:
                if self.placer is None:
                    claimed = self.queue.claim(timeout_s=CLAIM_WAIT_S)
                else:
                    claimed = self.placer.claim(self, CLAIM_WAIT_S)
            except Exception as error:  # the store cannot be written (full disk...): wait
                log.warning("worker on %s cannot claim a job: %s", self.device, error)
                self._stop_event.wait(RETRY_RECORD_S)
                continue
            if claimed is not None:
                self.run_one(*claimed)
                self.control.refresh(self.cache)  # the job may have loaded or evicted models

    def run_one(self, record: JobRecord, token: CancelToken) -> None:
        job_id = record.job_id
        self.current_job_id = job_id
        with job_context(job_id):  # every line logged while it runs (models' own) names it
            log.info(
                "job %s: %s on %s (attempt %d)", job_id, record.model, self.device, record.attempts
            )
            with job_running():  # background work (the start-up warm-up) waits meanwhile
                self._run_and_record(record, token)
        self.current_job_id = None  # kept if the thread dies: the supervisor settles that job

    def _run_and_record(self, record: JobRecord, token: CancelToken) -> None:
        job_id = record.job_id
        try:
            spec = self.queue.spec(record)
            output = run_job(
                self.cache,
                spec,
                stored_images(record, self.queue, spec),
                lambda progress, preview: self.queue.report_progress(job_id, progress, preview),
                token,
                mesh=job_mesh(self.queue.store, job_id, spec),
                keep_raw=None if spec.source_job else self.queue.store.job_dir(job_id) / RAW_FILE,
            )
        except Exception as error:
            if (exit_ := escaped_exit(error)) is not None:
                raise exit_ from error  # the thread dies: the supervisor retries the job
            if token.cancelled and self.queue.was_interrupted(job_id):
                self._requeue(job_id)
                return
            info, cancelled = self._error_info(error)
            if info.code == ErrorCode.CUDA_OUT_OF_MEMORY.value:
                self.cache.clear()  # start the next job from an empty device
            log.info(
                "job %s %s: %s", job_id, "cancelled" if cancelled else "failed", info.describe()
            )
            self._fail(job_id, info, cancelled)
            return
        try:
            self.queue.succeed(
                job_id, output.manifest, output.asset, output.preview, output.extra_files
            )
        except Exception as error:
            info, _ = self._error_info(error)
            log.warning("job %s: its result could not be recorded: %s", job_id, info.describe())
            self._fail(job_id, info, False)
            return
        log.info("job %s done: %d faces", job_id, output.manifest.faces)

    def _error_info(self, error: Exception) -> tuple[ErrorInfo, bool]:
        if is_disk_full(error) and not isinstance(error, ProtocolError):
            where = self.queue.store.jobs_dir
            return disk_full_error(where, f"the job failed writing to disk ({error})").info, False
        return error_from_exception(error)

    def _fail(self, job_id: str, info: ErrorInfo, cancelled: bool) -> None:
        try:
            self.queue.fail(job_id, info, cancelled=cancelled)
        except Exception as error:
            log.error(
                "job %s: its failure (%s) could not be recorded (%s); retrying until it can",
                job_id,
                info.code,
                error,
            )
            self._unrecorded.append((job_id, info, cancelled))

    def _record_pending(self) -> bool:
        """Record what could not be recorded before; True once nothing is left."""
        while self._unrecorded:
            job_id, info, cancelled = self._unrecorded[0]
            try:
                self.queue.fail(job_id, info, cancelled=cancelled)
            except Exception:
                return False
            log.info(
                "job %s: its %s is recorded at last", job_id, info.code, extra={"job_id": job_id}
            )
            self._unrecorded.pop(0)
        return True

    def _requeue(self, job_id: str) -> None:
        try:
            self.queue.requeue(job_id)
            log.info("job %s: back in the queue for the next start", job_id)
        except Exception as error:  # left running: the next start's recovery requeues it
            log.warning("job %s: not requeued at shutdown: %s", job_id, error)


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
