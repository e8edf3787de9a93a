"""The job queue's state machine over the store: submit, claim, progress, finish, cancel, recover.

States: ``queued -> running -> succeeded | failed | cancelled``, and ``queued -> cancelled``.
After a crash, ``recover`` puts jobs found ``running`` back in the queue once; a job found running
a second time (it has already been attempted twice) fails with ``interrupted``, so a job that
kills the process cannot loop forever (``retry_after_crash`` applies the same rule to a job
whose worker thread died). A graceful shutdown ``interrupt``s running jobs and ``requeue``s them
without counting the attempt. Every change is written to SQLite first and then published as an
event through ``publish`` (the server forwards it to subscribed clients). A submit is refused
with ``disk_full`` when free space is at or below ``min_free_mb``, with ``client_queue_full``
when its owner already has ``max_queued_per_client`` jobs queued, and leaves nothing behind
when it fails. At equal priority the owners' jobs are claimed in turn (store.py's fair
share). With no backend running, ``cancel_offline`` is the one transition the command line
makes by itself.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

from backend.cancellation import CancelToken
from backend.disk_space import check_free_space, disk_full_error, is_disk_full
from backend.jobs import result_files
from backend.jobs.spec import JobSpec
from backend.jobs.store import LOCAL_OWNER, JobRecord, JobStore
from backend.settings import Retention
from shared_protocol.codec import from_wire
from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import (
    JobFailedEvent,
    Manifest,
    Message,
    Progress,
    ProgressEvent,
    ResultEvent,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # the first run, and one retry after a crash
PROGRESS_WRITE_INTERVAL_S = 0.25  # progress reaches clients at every step, SQLite at most 4 Hz
LIVE_STATES = ("queued", "running")

Publish = Callable[[str, Message], None]
# Chooses a job id among the queued (job id, model, priority) given in claim order; None: none.
Pick = Callable[[list[tuple[str, str, int]]], str | None]
PICK_WINDOW = 256  # the queued jobs a pick looks at, from the front of the queue


class JobQueue:
    """Owns job state transitions; thread-safe (server thread + one worker thread per device)."""

    def __init__(
        self,
        store: JobStore,
        publish: Publish,
        *,
        retention: Retention | None = None,
        max_queued: int = 1000,
        min_free_mb: float = 0.0,
        max_queued_per_client: int | None = None,
    ) -> None:
        self.store = store
        self._publish = publish
        self._retention = retention or Retention()
        self._max_queued = max_queued
        self._max_queued_per_client = max_queued_per_client
        self._min_free_mb = min_free_mb
        self._wakeup = threading.Condition()
        self._tokens: dict[str, CancelToken] = {}
        self._interrupted: set[str] = set()  # cancelled by a shutdown, not by a client
        self._last_progress_write: dict[str, float] = {}
        self._progress_unstored: set[str] = set()  # jobs already logged as such

    # --- submitting and claiming ----------------------------------------------------------

    def submit(
        self,
        spec: JobSpec,
        encoded_images: tuple[bytes, ...],
        *,
        priority: int = 0,
        owner: str = LOCAL_OWNER,
        request_key: str | None = None,
        submit_msg_id: str | None = None,
        encoded_mesh: bytes | None = None,
    ) -> tuple[JobRecord, int]:
        """Queue an admitted job; its images are written as ``spec.images`` names them.

        ``owner`` is who may see and change it; ``request_key`` and ``submit_msg_id`` let a
        repeated submit find it (``find_submitted``). A failure leaves no folder behind.
        Returns (job, queue position).
        """
        if self.store.count("queued") >= self._max_queued:
            raise ProtocolError(
                ErrorCode.QUEUE_FULL, f"the queue already holds {self._max_queued} jobs"
            )
        cap = self._max_queued_per_client
        if cap is not None and self.store.count_queued_of(owner) >= cap:
            raise ProtocolError(
                ErrorCode.CLIENT_QUEUE_FULL,
                f"this client already has {cap} jobs queued, the most one client may queue",
            )
        check_free_space(self.store.jobs_dir, self._min_free_mb, self.store.reserve)
        job_id = uuid.uuid4().hex[:16]
        try:
            return self._insert(
                job_id,
                JobRecord(
                    job_id=job_id,
                    seq=0,
                    state="queued",
                    priority=priority,
                    model=spec.model,
                    task=spec.task,
                    prompt=spec.prompt,
                    name=spec.name,
                    seed=spec.seed,
                    request=spec.to_json(),
                    created_at=time.time(),
                    owner=owner,
                    request_key=request_key,
                    submit_msg_id=submit_msg_id,
                ),
                spec,
                encoded_images,
                encoded_mesh,
            )
        except BaseException as error:
            shutil.rmtree(self.store.job_dir(job_id), ignore_errors=True)
            if is_disk_full(error) and not isinstance(error, ProtocolError):
                raise disk_full_error(self.store.jobs_dir, "the job could not be stored") from None
            raise

    def find_submitted(
        self, owner: str, request_key: str | None, submit_msg_id: str | None
    ) -> JobRecord | None:
        """The job a repeated submit (same request key, or same msg_id) already made."""
        if request_key is None and submit_msg_id is None:
            return None
        return self.store.find_submitted(owner, request_key, submit_msg_id)

    def _insert(
        self,
        job_id: str,
        record: JobRecord,
        spec: JobSpec,
        encoded_images: tuple[bytes, ...],
        encoded_mesh: bytes | None = None,
    ) -> tuple[JobRecord, int]:
        inputs = self.store.job_dir(job_id) / "inputs"
        inputs.mkdir(parents=True)
        for image, data in zip(spec.images, encoded_images, strict=True):
            (inputs / image.file).write_bytes(data)
        if spec.mesh_file is not None and encoded_mesh is not None:
            (inputs / spec.mesh_file).write_bytes(encoded_mesh)
        self.store.insert(record)
        log.info("job %s queued: %s", job_id, record.model, extra={"job_id": job_id})
        with self._wakeup:
            self._wakeup.notify_all()
        return record, self.store.queue_position(job_id) or 0

    def spec(self, record: JobRecord) -> JobSpec:
        """The stored spec of ``record`` (rows from before typed specs lack the columns' keys)."""
        columns = {
            "model": record.model,
            "task": record.task,
            "prompt": record.prompt,
            "seed": record.seed,
            "name": record.name,
        }
        return JobSpec.from_json({**columns, **record.request})

    def claim(
        self, timeout_s: float, pick: Pick | None = None
    ) -> tuple[JobRecord, CancelToken] | None:
        """Wait up to ``timeout_s`` for a queued job; mark it running and return it.

        ``pick`` (a device placer, jobs/device_placer.py) chooses among the queued jobs, given
        in claim order, under the queue's lock; None: the first in claim order."""
        deadline = time.monotonic() + timeout_s
        with self._wakeup:
            while True:
                if pick is None:
                    record = self.store.claim_next()
                else:
                    chosen = pick(self.store.queued_in_order(PICK_WINDOW))
                    record = self.store.claim_job(chosen) if chosen is not None else None
                    if record is not None:
                        self._wakeup.notify_all()  # the others choose again without this job
                if record is not None:
                    token = CancelToken()
                    self._tokens[record.job_id] = token
                    return record, token
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._wakeup.wait(remaining)

    def wake_all(self) -> None:
        """Wake waiting workers (on shutdown)."""
        with self._wakeup:
            self._wakeup.notify_all()

    # --- while running --------------------------------------------------------------------

    def report_progress(self, job_id: str, progress: Progress, preview: bytes | None) -> None:
        now = time.monotonic()
        if now - self._last_progress_write.get(job_id, 0.0) >= PROGRESS_WRITE_INTERVAL_S:
            self._last_progress_write[job_id] = now
            try:
                self.store.update_progress(job_id, asdict(progress))
            except sqlite3.Error as error:
                if not is_disk_full(error):
                    raise
                # Stored progress is only a display; the job runs on, and its end is recorded.
                if job_id not in self._progress_unstored:
                    self._progress_unstored.add(job_id)
                    log.warning(
                        "job %s: progress not stored while the disk is full", job_id,
                        extra={"job_id": job_id},
                    )  # fmt: skip
        self._publish(job_id, ProgressEvent(job_id=job_id, progress=progress, preview=preview))

    # --- finishing ------------------------------------------------------------------------

    def succeed(
        self,
        job_id: str,
        manifest: Manifest,
        asset: bytes,
        preview: bytes | None,
        extra_files: Mapping[str, bytes] | None = None,
    ) -> None:
        """Write the result files (the asset, its preview, the manifest's ``extra_files``),
        then mark the job succeeded; DISK_FULL if they do not fit."""
        job_dir = self.store.job_dir(job_id)
        extra_files = extra_files or {}
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(job_dir / f"result.{manifest.format}", asset)
            if preview:
                _write_atomic(job_dir / "preview.png", preview)
            for name, data in extra_files.items():
                path = result_files.file_path(job_dir, name)
                path.parent.mkdir(exist_ok=True)
                _write_atomic(path, data)
        except OSError as error:
            if not is_disk_full(error):
                raise
            for name in (f"result.{manifest.format}", "preview.png"):
                for leftover in (job_dir / name, job_dir / f"{name}.tmp"):
                    leftover.unlink(missing_ok=True)
            shutil.rmtree(job_dir / result_files.FILES_FOLDER, ignore_errors=True)
            raise disk_full_error(job_dir, "the result could not be written") from None
        done = Progress(stage="done", step=1, total=1, fraction=1.0, eta_s=0.0)
        self.store.update(
            job_id,
            expect_state="running",
            state="succeeded",
            finished_at=time.time(),
            manifest=asdict(manifest),
            progress=asdict(done),
        )
        self._forget(job_id)
        self._publish(
            job_id, ResultEvent(job_id=job_id, manifest=manifest, asset=asset, preview=preview)
        )

    def fail(self, job_id: str, error: ErrorInfo, *, cancelled: bool = False) -> None:
        state = "cancelled" if cancelled else "failed"
        self.store.update(job_id, state=state, finished_at=time.time(), error=asdict(error))
        self._forget(job_id)
        self._publish(job_id, JobFailedEvent(job_id=job_id, state=state, error=error))

    def cancel(self, job_id: str) -> str:
        """Cancel a job: a queued one at once, a running one at its next step. Returns its state."""
        record = self._require(job_id)
        if record.state == "queued" and self.store.update(
            job_id,
            expect_state="queued",
            state="cancelled",
            finished_at=time.time(),
            error=asdict(ProtocolError(ErrorCode.CANCELLED, "cancelled before it started").info),
        ):
            self._publish(
                job_id,
                JobFailedEvent(
                    job_id=job_id,
                    state="cancelled",
                    error=ProtocolError(ErrorCode.CANCELLED, "cancelled before it started").info,
                ),
            )
            return "cancelled"
        token = self._tokens.get(job_id)
        if token is not None:
            token.cancel()
        return self._require(job_id).state

    def cancel_offline(self, job_id: str) -> None:
        """Cancel a queued or running job while no backend runs (the CLI's ``jobs cancel``).

        No worker holds the job, so a running one (left by a backend that died) is cancelled at
        once too; otherwise the next backend's ``recover`` would run it again. Each write is a
        compare-and-set on the state just read: if a backend moved the job on meanwhile, the
        new state is read and decided again (states only move forward, apart from recover's
        running -> queued, so this ends). A finished job is JOB_FINISHED, an unknown one
        UNKNOWN_JOB (with no ``field``: there is no request).
        """
        error = ProtocolError(ErrorCode.CANCELLED, "cancelled while the backend was down").info
        while (record := self.store.get(job_id)) is not None and record.state in LIVE_STATES:
            if self.store.update(job_id, expect_state=record.state, state="cancelled",
                                 finished_at=time.time(), error=asdict(error)):
                return
        if record is None:
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no job {job_id!r}")
        raise ProtocolError(ErrorCode.JOB_FINISHED,
                            f"job {job_id} has already ended ({record.state}): nothing to cancel")

    def delete(self, job_id: str) -> None:
        record = self._require(job_id)
        if record.state in ("queued", "running"):
            self.cancel(job_id)
        self.store.delete(job_id)

    # --- interruptions ----------------------------------------------------------------------

    def interrupt(self) -> None:
        """Shutdown: cancel every running job so that its worker puts it back in the queue."""
        for job_id, token in list(self._tokens.items()):
            self._interrupted.add(job_id)
            token.cancel()

    def was_interrupted(self, job_id: str) -> bool:
        return job_id in self._interrupted

    def requeue(self, job_id: str) -> None:
        """Put a running job back in the queue without counting its attempt (shutdown)."""
        self.store.update(
            job_id,
            expect_state="running",
            state="queued",
            started_at=None,
            progress=None,
            attempts=max(0, (self._require(job_id).attempts or 1) - 1),
        )
        self._forget(job_id)

    def retry_after_crash(self, job_id: str) -> str:
        """The worker running ``job_id`` died: queue it again once, else fail it. New state."""
        self._forget(job_id)
        record = self.store.get(job_id)
        if record is None or record.state != "running":
            return record.state if record else "deleted"
        if record.attempts >= MAX_ATTEMPTS:
            error = ProtocolError(
                ErrorCode.INTERRUPTED,
                f"the worker running this job died {record.attempts} times; see the backend log",
            ).info
            self.fail(job_id, error)
            return "failed"
        self.store.update(
            job_id, expect_state="running", state="queued", started_at=None, progress=None
        )
        with self._wakeup:
            self._wakeup.notify_all()
        return "queued"

    # --- housekeeping ---------------------------------------------------------------------

    def recover(self) -> tuple[list[str], list[str]]:
        """After a restart: requeue jobs that were running once; fail those tried twice."""
        requeued, failed = [], []
        for job_id in self.store.ids_in_state("running"):
            record = self.store.get(job_id)
            if record is None:
                continue
            if record.attempts >= MAX_ATTEMPTS:
                error = ProtocolError(
                    ErrorCode.INTERRUPTED,
                    f"the backend stopped while running this job {record.attempts} times",
                ).info
                self.store.update(
                    job_id, state="failed", finished_at=time.time(), error=asdict(error)
                )
                failed.append(job_id)
                log.warning("job %s failed: %s", job_id, error.message, extra={"job_id": job_id})
            else:
                self.store.update(job_id, state="queued", started_at=None, progress=None)
                requeued.append(job_id)
                log.warning(
                    "job %s: requeued, it was running when the backend stopped", job_id,
                    extra={"job_id": job_id},
                )  # fmt: skip
        return requeued, failed

    def expire(self, now: float | None = None) -> list[str]:
        """Delete finished jobs beyond the retention limits."""
        now = time.time() if now is None else now
        expired = self.store.finished_to_expire(
            older_than=now - self._retention.max_age_days * 86400,
            keep_newest=self._retention.max_finished_jobs,
        )
        for job_id in expired:
            self.store.delete(job_id)
        return expired

    def republish_end(self, record: JobRecord) -> None:
        """Publish a finished job's result or failure again, for a client that missed it."""
        if record.state == "succeeded" and record.manifest is not None:
            path = self.result_path(record)
            if not path.is_file():
                return  # expired: status and fetch say so
            preview = path.with_name("preview.png")
            message: Message = ResultEvent(
                job_id=record.job_id,
                manifest=manifest_from_dict(record.manifest),
                asset=path.read_bytes(),
                preview=preview.read_bytes() if preview.is_file() else None,
            )
        elif record.state in ("failed", "cancelled") and record.error is not None:
            message = JobFailedEvent(
                job_id=record.job_id, state=record.state, error=ErrorInfo(**record.error)
            )
        else:
            return
        self._publish(record.job_id, message)

    def result_path(self, record: JobRecord) -> Path:
        fmt = (record.manifest or {}).get("format", "glb")
        return self.store.job_dir(record.job_id) / f"result.{fmt}"

    def _require(self, job_id: str) -> JobRecord:
        record = self.store.get(job_id)
        if record is None:
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no job {job_id!r}", field="body.job_id")
        return record

    def _forget(self, job_id: str) -> None:
        self._tokens.pop(job_id, None)
        self._interrupted.discard(job_id)
        self._last_progress_write.pop(job_id, None)
        self._progress_unstored.discard(job_id)


def manifest_from_dict(data: dict) -> Manifest:
    """A stored manifest (JSON) as the message record, rebuilt and checked by the codec."""
    return from_wire(Manifest, data, [], "manifest", set())


def _write_atomic(path: Path, data: bytes) -> None:
    """Write then rename, so a crash never leaves a half-written result that looks whole."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
