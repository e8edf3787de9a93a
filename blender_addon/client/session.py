"""One non-blocking conversation with a backend: requests, replies, events, liveness (no bpy).

``Session`` wraps ``shared_protocol.client.BackendClient``. Every call returns at once; ``poll``
reads what has arrived and returns notifications (records.py) for the runtime to act on, so a
Blender timer tick never waits. Liveness is a ping every ``heartbeat_s``: a DEALER socket never
notices a dead peer by itself, so any request unanswered for ``reply_timeout_s`` means the
backend is gone (killed, crashed, unreachable) and the session turns LOST with a clear error
instead of hanging. ``connect`` again after that: live jobs are re-watched and finished ones
fetched. ``poll(wait_s)`` may block, which only background (batch) mode asks for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared_protocol.client import BackendClient, CurveKeys
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import PROTOCOL_VERSION, Envelope
from shared_protocol.messages import (
    CancelReply,
    CancelRequest,
    DeleteReply,
    DeleteRequest,
    ErrorReply,
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    JobFailedEvent,
    JobInfo,
    ListJobsReply,
    ListJobsRequest,
    Message,
    PingReply,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)

from .records import (
    Connected,
    ConnectionState,
    Disconnected,
    JobChanged,
    JobEnded,
    JobRecord,
    JobsListed,
    Notification,
    RequestFailed,
    ResultReady,
    client_error,
    settings_of,
)

# A backend that could read our tag but not our version says so in words ("this side speaks N");
# a message of theirs we cannot read carries its version as DecodeError.peer_version.
_THEIR_SIDE_VERSION = re.compile(r"this side speaks (\d+)")


@dataclass
class _Pending:
    """A request awaiting its reply: what it was, when it left, and what it was about."""

    action: str
    sent_at: float
    job_id: str | None = None
    submit: SubmitRequest | None = None


class Session:
    """The add-on's connection to one backend address."""

    def __init__(
        self,
        address: str,
        *,
        curve: CurveKeys | None = None,
        client_version: str = "",
        heartbeat_s: float = 1.0,
        reply_timeout_s: float = 10.0,
        connect_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.curve = curve
        self.client_version = client_version
        self.heartbeat_s = heartbeat_s
        self.reply_timeout_s = reply_timeout_s
        # A backend that is still starting (importing torch) answers hello late.
        self.connect_timeout_s = connect_timeout_s or reply_timeout_s
        self._clock = clock
        self.state = ConnectionState.DISCONNECTED
        self.hello: HelloReply | None = None
        self.error = None  # ErrorInfo of the last connection failure
        self.jobs: dict[str, JobRecord] = {}
        self._client: BackendClient | None = None
        self._pending: dict[str, _Pending] = {}
        self._submits_by_msg: dict[str, SubmitRequest] = {}
        self._last_ping = 0.0

    # --- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        """(Re)open the socket and send hello; the reply arrives through ``poll``."""
        self.close()
        self._client = BackendClient(self.address, curve=self.curve)
        self.state = ConnectionState.CONNECTING
        self.error = None
        hello = HelloRequest(client_name="dreamcad-blender", client_version=self.client_version)
        self._send(hello, _Pending("hello", self._clock()))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._pending.clear()
        self.state = ConnectionState.DISCONNECTED

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    @property
    def busy(self) -> bool:
        """True while something is on its way: the runtime ticks faster then."""
        live = any(not job.finished for job in self.jobs.values())
        return bool(self._pending) or live or self.state is ConnectionState.CONNECTING

    # --- requests (all return at once) ----------------------------------------------------

    def submit(self, request: SubmitRequest) -> str:
        msg_id = self._send(request, _Pending("submit", self._clock(), submit=request))
        self._submits_by_msg[msg_id] = request
        return msg_id

    def cancel(self, job_id: str) -> None:
        self._send(CancelRequest(job_id=job_id), _Pending("cancel", self._clock(), job_id))

    def fetch(self, job_id: str) -> None:
        self._send(FetchRequest(job_id=job_id), _Pending("fetch", self._clock(), job_id))

    def delete(self, job_id: str) -> None:
        self._send(DeleteRequest(job_id=job_id), _Pending("delete", self._clock(), job_id))

    def watch(self, job_id: str) -> None:
        request = StatusRequest(job_id=job_id, watch=True)
        self._send(request, _Pending("status", self._clock(), job_id))

    def list_jobs(self) -> None:
        self._send(ListJobsRequest(), _Pending("list_jobs", self._clock()))

    def _send(self, message: Message, pending: _Pending) -> str:
        if self._client is None:
            raise ProtocolError(
                ErrorCode.BACKEND_UNREACHABLE,
                f"not connected to a backend at {self.address}",
                hint="Press Retry in the Dream CAD panel, or start a local backend.",
            )
        msg_id = self._client.send(message)
        self._pending[msg_id] = pending
        return msg_id

    # --- the tick ---------------------------------------------------------------------------

    def poll(self, wait_s: float = 0.0) -> list[Notification]:
        """Handle what has arrived (waiting up to ``wait_s`` for the first message)."""
        if self._client is None:
            return []
        notes: list[Notification] = []
        try:
            envelopes = []
            if wait_s > 0:
                first = self._client.receive(wait_s)
                envelopes = [first] if first is not None else []
            envelopes += self._client.drain()
        except ProtocolError as error:  # only a protocol version mismatch escapes the client
            return [self._incompatible(getattr(error, "peer_version", None))]
        for envelope in envelopes:
            notes.extend(self._dispatch(envelope))
            if self.state is ConnectionState.INCOMPATIBLE:
                return notes
        notes.extend(self._check_liveness())
        return notes

    def _check_liveness(self) -> list[Notification]:
        now = self._clock()
        overdue = [p for p in self._pending.values() if now - p.sent_at > self._timeout_of(p)]
        if overdue:
            return [self._lost(overdue[0].action)]
        ping_due = self.connected and now - self._last_ping >= self.heartbeat_s
        if ping_due and not any(p.action == "ping" for p in self._pending.values()):
            self._last_ping = now
            self._send(PingRequest(), _Pending("ping", now))
        return []

    def _timeout_of(self, pending: _Pending) -> float:
        return self.connect_timeout_s if pending.action == "hello" else self.reply_timeout_s

    def _lost(self, action: str) -> Notification:
        was_connected = self.state is not ConnectionState.CONNECTING
        self.close()
        self.state = ConnectionState.LOST
        if was_connected:
            message = (
                f"the backend at {self.address} stopped answering "
                f"(no reply to {action} in {self.reply_timeout_s:g} s)"
            )
            hint = "It may have crashed or been stopped: check its log, then press Retry."
        else:
            message = (
                f"no backend answers at {self.address} "
                f"(no reply to hello in {self.connect_timeout_s:g} s)"
            )
            hint = "Start it (Start Local Backend, or `dreamcad-backend serve`), then Retry."
        self.error = client_error(ErrorCode.BACKEND_UNREACHABLE, message, hint)
        for job in self.jobs.values():
            if not job.finished:
                job.progress = None  # stale: the job's fate is known again on reconnect
        return Disconnected(self.state, self.error)

    def _incompatible(self, remote_version: int | None) -> Notification:
        self.close()
        self.state = ConnectionState.INCOMPATIBLE
        theirs = f"protocol {remote_version}" if remote_version is not None else "another protocol"
        self.error = client_error(
            ErrorCode.PROTOCOL_VERSION_MISMATCH,
            f"the backend at {self.address} speaks {theirs}; "
            f"this add-on speaks protocol {PROTOCOL_VERSION}",
            incompatibility_hint(remote_version),
        )
        return Disconnected(self.state, self.error)

    # --- replies and events -----------------------------------------------------------------

    def _dispatch(self, envelope: Envelope) -> list[Notification]:
        message = envelope.message
        if envelope.type.endswith("_event"):
            return self._on_event(envelope)
        pending = self._pending.pop(envelope.parent_id or "", None)
        if pending is None:
            return []  # a reply to a request from before a reconnect
        if isinstance(message, ErrorReply):
            return self._on_error_reply(pending, envelope)
        handler = getattr(self, f"_on_{pending.action}", None)
        return handler(message, pending, envelope) if handler else []

    def _on_error_reply(self, pending: _Pending, envelope: Envelope) -> list[Notification]:
        error = envelope.message.error  # type: ignore[attr-defined]
        if error.code == ErrorCode.PROTOCOL_VERSION_MISMATCH.value:
            return [self._incompatible(_version_in(_THEIR_SIDE_VERSION, error.message))]
        self._submits_by_msg.pop(envelope.parent_id or "", None)
        if pending.action == "hello":
            self.close()
            self.state = ConnectionState.LOST
            self.error = client_error(ErrorCode(error.code), error.message, error.hint)
            return [Disconnected(self.state, self.error)]
        info = client_error(_code(error.code), error.message, error.hint)
        if pending.action in ("status", "fetch") and pending.job_id in self.jobs:
            job = self.jobs[pending.job_id]
            job.error = info
            if error.code in (ErrorCode.UNKNOWN_JOB.value, ErrorCode.RESULT_EXPIRED.value):
                job.state = "failed"  # the backend forgot it: it will never finish now
        return [RequestFailed(pending.action, info, pending.job_id, envelope.parent_id or "")]

    def _on_hello(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, HelloReply)
        if message.protocol_version != PROTOCOL_VERSION:
            return [self._incompatible(message.protocol_version)]
        self.hello = message
        self.state = ConnectionState.CONNECTED
        self._last_ping = self._clock()
        for job in self.jobs.values():  # jobs from before a lost connection
            if not job.finished or (job.state == "succeeded" and not job.result_received):
                self.watch(job.job_id)
        self.list_jobs()
        return [Connected(message)]

    def _on_submit(self, message: Message, pending: _Pending, env: Envelope) -> list[Notification]:
        assert isinstance(message, SubmitReply) and pending.submit is not None
        request = pending.submit
        job = self.jobs.get(message.job_id) or JobRecord(
            job_id=message.job_id,
            name=request.name,
            model=request.model,
            prompt=request.prompt,
            task=request.task,
            seed=message.seed,
            settings=settings_of(request),
        )
        job.seed = message.seed
        job.submitted_here = True
        job.submit_msg_id = env.parent_id or ""
        job.queue_position = message.queue_position
        self.jobs[message.job_id] = job
        return [JobChanged(message.job_id)]

    def _on_status(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, StatusReply)
        job = self._merge(message.job)
        notes: list[Notification] = [JobChanged(job.job_id)]
        if job.state == "succeeded" and not job.result_received and job.submitted_here:
            self.fetch(job.job_id)  # finished while we were away
        elif job.state in ("failed", "cancelled") and job.error is not None:
            notes.append(JobEnded(job.job_id, job.state, job.error))
        return notes

    def _on_list_jobs(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, ListJobsReply)
        for info in message.jobs:
            self._merge(info)
        return [JobsListed(tuple(info.job_id for info in message.jobs))]

    def _on_fetch(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, FetchReply)
        return self._result(message.job_id, message.manifest, message.asset, message.preview)

    def _on_cancel(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, CancelReply)
        if message.job_id in self.jobs:
            self.jobs[message.job_id].state = message.state
        return [JobChanged(message.job_id)]

    def _on_delete(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, DeleteReply)
        self.jobs.pop(message.job_id, None)
        return [JobChanged(message.job_id)]

    def _on_ping(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, PingReply)
        if self.hello is not None and message.gpus:
            self.hello = _with_gpus(self.hello, message)
        return []

    def _on_event(self, envelope: Envelope) -> list[Notification]:
        message = envelope.message
        job_id = getattr(message, "job_id", "")
        job = self.jobs.get(job_id) or self._job_from_submit(job_id, envelope.parent_id)
        if job is None:
            return []
        if isinstance(message, ProgressEvent):
            job.state = "running"
            job.progress = message.progress
            return [JobChanged(job_id)]
        if isinstance(message, ResultEvent):
            return self._result(job_id, message.manifest, message.asset, message.preview)
        if isinstance(message, JobFailedEvent):
            job.state = message.state
            job.error = client_error(_code(message.error.code), message.error.message,
                                     message.error.hint)
            return [JobChanged(job_id), JobEnded(job_id, message.state, job.error)]
        return []

    def _job_from_submit(self, job_id: str, parent_id: str | None) -> JobRecord | None:
        """An event that overtook its submit reply: make the record from the request."""
        request = self._submits_by_msg.get(parent_id or "")
        if request is None or not job_id:
            return None
        job = JobRecord(job_id, request.name, request.model, request.prompt, request.task,
                        request.seed, settings_of(request), submitted_here=True,
                        submit_msg_id=parent_id or "")
        self.jobs[job_id] = job
        return job

    def _result(self, job_id: str, manifest, asset: bytes, preview: bytes | None):
        job = self.jobs.get(job_id)
        if job is None:
            return []
        job.state = "succeeded"
        job.manifest = manifest
        job.seed = manifest.seed
        job.result_received = True
        job.error = None
        return [JobChanged(job_id), ResultReady(job_id, manifest, asset, preview)]

    def _merge(self, info: JobInfo) -> JobRecord:
        """Fold a backend JobInfo into our record (creating it for jobs from elsewhere)."""
        job = self.jobs.get(info.job_id)
        if job is None:
            seed = info.manifest.seed if info.manifest else None
            job = JobRecord(info.job_id, info.name, info.model, info.prompt, info.task, seed)
            self.jobs[info.job_id] = job
        job.state = info.state
        job.progress = info.progress or job.progress
        job.queue_position = info.queue_position
        if info.error is not None:
            job.error = client_error(_code(info.error.code), info.error.message, info.error.hint)
        if info.manifest is not None:
            job.manifest = info.manifest
        return job


def incompatibility_hint(remote: int | None) -> str:
    """Say which side to upgrade, given the backend's protocol version when it is known."""
    if remote is None:
        return (
            "Upgrade the older of the two so both speak the same protocol: the Dream CAD "
            "add-on (Edit > Preferences > Get Extensions) or the backend (scripts/setup_env.sh)."
        )
    if remote > PROTOCOL_VERSION:
        return (
            f"The backend is newer (protocol {remote}; this add-on speaks {PROTOCOL_VERSION}): "
            "upgrade the Dream CAD add-on."
        )
    return (
        f"The backend is older (protocol {remote}; this add-on speaks {PROTOCOL_VERSION}): "
        "upgrade the backend (rerun scripts/setup_env.sh or pip install -U dreamcad)."
    )


def _version_in(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    return int(match.group(1)) if match else None


def _code(value: str) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL_ERROR


def _with_gpus(hello: HelloReply, ping: PingReply) -> HelloReply:
    """The hello with fresh GPU telemetry from a ping (free VRAM changes while we run)."""
    from dataclasses import replace

    return replace(hello, gpus=ping.gpus)
