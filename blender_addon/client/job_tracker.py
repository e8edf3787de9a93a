"""The client's book of jobs: backend replies and events folded into JobRecords (no bpy, no I/O).

``JobTracker`` owns ``jobs`` (job id -> JobRecord) and turns what the backend says about a job
(submit replies, status and list replies, progress / result / failure events) into record
updates plus the notifications the runtime acts on. It also knows what a reconnect must pick up
again: jobs still live, and finished ones whose result never reached us. Sending is the
session's job; the tracker only says what needs sending.
"""

from __future__ import annotations

from shared_protocol.client import error_from_wire
from shared_protocol.errors import ErrorCode, ErrorInfo
from shared_protocol.messages import (
    JobFailedEvent,
    JobInfo,
    Manifest,
    Message,
    ProgressEvent,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)

from .records import (
    JobChanged,
    JobDeleted,
    JobEnded,
    JobRecord,
    Notification,
    ResultReady,
    settings_of,
)

# Error codes on a status/fetch reply that mean the backend has forgotten the job for good.
_FORGOTTEN = (ErrorCode.UNKNOWN_JOB.value, ErrorCode.RESULT_EXPIRED.value)


class JobTracker:
    """Every job this client knows of, and what each reply or event changes about it."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        # Submits by msg_id until the backend names their job: an event may overtake the reply.
        self._submits_by_msg: dict[str, SubmitRequest] = {}

    # --- our own submits ----------------------------------------------------------------------

    def submit_sent(self, msg_id: str, request: SubmitRequest) -> None:
        self._submits_by_msg[msg_id] = request

    def submit_refused(self, msg_id: str) -> None:
        self._submits_by_msg.pop(msg_id, None)

    def submitted(self, reply: SubmitReply, request: SubmitRequest,
                  msg_id: str) -> list[Notification]:
        """The backend accepted our submit (``msg_id``) as ``reply.job_id``."""
        job = self.jobs.get(reply.job_id) or JobRecord(
            job_id=reply.job_id,
            name=request.name,
            model=request.model,
            prompt=request.prompt,
            task=request.task,
            seed=reply.seed,
            settings=settings_of(request),
        )
        job.request_key = request.request_key
        job.seed = reply.seed
        job.submitted_here = True
        job.submit_msg_id = msg_id
        job.queue_position = reply.queue_position
        self.jobs[reply.job_id] = job
        return [JobChanged(reply.job_id)]

    # --- what the backend reports ------------------------------------------------------------

    def merge(self, info: JobInfo) -> JobRecord:
        """Fold a backend JobInfo into our record (creating it for jobs from elsewhere)."""
        job = self.jobs.get(info.job_id)
        if job is None:
            seed = info.manifest.seed if info.manifest else None
            job = JobRecord(info.job_id, info.name, info.model, info.prompt, info.task, seed)
            self.jobs[info.job_id] = job
        job.state = info.state
        job.progress = info.progress or job.progress
        job.queue_position = info.queue_position
        job.request_key = info.request_key or job.request_key
        if info.error is not None:
            job.error = error_from_wire(info.error).info
        if info.manifest is not None:
            job.manifest = info.manifest
        return job

    def status(self, info: JobInfo) -> tuple[list[Notification], bool]:
        """A status reply: the notifications, and whether its result should be fetched now
        (it finished while we were away)."""
        job = self.merge(info)
        notes: list[Notification] = [JobChanged(job.job_id)]
        if job.state == "succeeded" and not job.result_received and job.submitted_here:
            return notes, True
        if job.state in ("failed", "cancelled") and job.error is not None:
            notes.append(JobEnded(job.job_id, job.state, job.error))
        return notes, False

    def request_failed(self, job_id: str | None, info: ErrorInfo) -> None:
        """A status or fetch about ``job_id`` was refused."""
        job = self.jobs.get(job_id or "")
        if job is None:
            return
        job.error = info
        if info.code in _FORGOTTEN:
            job.state = "failed"  # the backend forgot it: it will never finish now

    def cancelled(self, job_id: str, state: str) -> list[Notification]:
        if job_id in self.jobs:
            self.jobs[job_id].state = state
        return [JobChanged(job_id)]

    def deleted(self, job_id: str) -> list[Notification]:
        self.jobs.pop(job_id, None)
        return [JobChanged(job_id), JobDeleted(job_id)]

    def event(self, message: Message, parent_id: str | None) -> list[Notification]:
        """A progress, result or failure event (``parent_id``: the submit it belongs to)."""
        job_id = getattr(message, "job_id", "")
        job = self.jobs.get(job_id) or self._job_from_submit(job_id, parent_id)
        if job is None:
            return []
        if isinstance(message, ProgressEvent):
            job.state = "running"
            job.progress = message.progress
            return [JobChanged(job_id)]
        if isinstance(message, ResultEvent):
            return self.result(job_id, message.manifest, message.asset, message.preview)
        if isinstance(message, JobFailedEvent):
            job.state = message.state
            job.error = error_from_wire(message.error).info
            return [JobChanged(job_id), JobEnded(job_id, message.state, job.error)]
        return []

    def result(self, job_id: str, manifest: Manifest, asset: bytes,
               preview: bytes | None) -> list[Notification]:
        """A finished asset arrived (result_event or fetch_reply)."""
        job = self.jobs.get(job_id)
        if job is None:
            return []
        job.state = "succeeded"
        job.manifest = manifest
        job.seed = manifest.seed
        job.result_received = True
        job.error = None
        return [JobChanged(job_id), ResultReady(job_id, manifest, asset, preview)]

    # --- reconnecting ------------------------------------------------------------------------

    def adopt(self, old: JobTracker) -> None:
        """Take over ``old``'s jobs (a new connection to the same backend)."""
        self.jobs = old.jobs

    def to_watch(self) -> list[str]:
        """Jobs to watch again after (re)connecting: live ones, and results we never got."""
        return [job.job_id for job in self.jobs.values()
                if not job.finished or (job.state == "succeeded" and not job.result_received)]

    def connection_lost(self) -> None:
        for job in self.jobs.values():
            if not job.finished:
                job.progress = None  # stale: the job's fate is known again on reconnect

    @property
    def live(self) -> bool:
        return any(not job.finished for job in self.jobs.values())

    def _job_from_submit(self, job_id: str, parent_id: str | None) -> JobRecord | None:
        """An event that overtook its submit reply: make the record from the request."""
        request = self._submits_by_msg.get(parent_id or "")
        if request is None or not job_id:
            return None
        job = JobRecord(job_id, request.name, request.model, request.prompt, request.task,
                        request.seed, settings_of(request), submitted_here=True,
                        submit_msg_id=parent_id or "", request_key=request.request_key)
        self.jobs[job_id] = job
        return job
