"""The job queue's state machine over the store: submit, claim, progress, finish, cancel, recover.

States: ``queued -> running -> succeeded | failed | cancelled``, and ``queued -> cancelled``.
After a crash, ``recover`` puts jobs found ``running`` back in the queue once; a job found running
a second time (it has already been attempted twice) fails with ``interrupted``, so a job that
kills the process cannot loop forever. Every change is written to SQLite first and then
published as an event through ``publish`` (the server forwards it to subscribed clients). With
no backend running, ``cancel_offline`` is the one transition the command line makes by itself.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from backend.cancellation import CancelToken
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobRecord, JobStore
from backend.settings import Retention
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


class JobQueue:
    """Owns job state transitions; thread-safe (server thread + one worker thread per device)."""

    def __init__(
        self,
        store: JobStore,
        publish: Publish,
        *,
        retention: Retention | None = None,
        max_queued: int = 1000,
    ) -> None:
        self.store = store
        self._publish = publish
        self._retention = retention or Retention()
        self._max_queued = max_queued
        self._wakeup = threading.Condition()
        self._tokens: dict[str, CancelToken] = {}
        self._last_progress_write: dict[str, float] = {}

    # --- submitting and claiming ----------------------------------------------------------

    def submit(
        self, spec: JobSpec, encoded_images: tuple[bytes, ...], *, priority: int = 0
    ) -> tuple[JobRecord, int]:
        """Queue an admitted job; its images are written as ``spec.images`` names them.

        Returns (job, queue position)."""
        if self.store.count("queued") >= self._max_queued:
            raise ProtocolError(
                ErrorCode.QUEUE_FULL, f"the queue already holds {self._max_queued} jobs"
            )
        job_id = uuid.uuid4().hex[:16]
        inputs = self.store.job_dir(job_id) / "inputs"
        inputs.mkdir(parents=True)
        for image, data in zip(spec.images, encoded_images, strict=True):
            (inputs / image.file).write_bytes(data)
        record = JobRecord(
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
        )
        self.store.insert(record)
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

    def claim(self, timeout_s: float) -> tuple[JobRecord, CancelToken] | None:
        """Wait up to ``timeout_s`` for a queued job; mark it running and return it."""
        deadline = time.monotonic() + timeout_s
        with self._wakeup:
            while True:
                record = self.store.claim_next()
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
            self.store.update(job_id, progress=asdict(progress))
        self._publish(job_id, ProgressEvent(job_id=job_id, progress=progress, preview=preview))

    # --- finishing ------------------------------------------------------------------------

    def succeed(self, job_id: str, manifest: Manifest, asset: bytes, preview: bytes | None) -> None:
        job_dir = self.store.job_dir(job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(job_dir / f"result.{manifest.format}", asset)
        if preview:
            _write_atomic(job_dir / "preview.png", preview)
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
            else:
                self.store.update(job_id, state="queued", started_at=None, progress=None)
                requeued.append(job_id)
        if requeued or failed:
            log.warning("recovered after restart: requeued %s, failed %s", requeued, failed)
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
        self._last_progress_write.pop(job_id, None)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write then rename, so a crash never leaves a half-written result that looks whole."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
