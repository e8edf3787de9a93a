"""One non-blocking conversation with a backend: requests, replies, events, liveness (no bpy).

``Session`` wraps ``shared_protocol.client.BackendClient``. Every call returns at once; ``poll``
reads what has arrived and returns notifications (records.py) for the runtime to act on, so a
Blender timer tick never waits. What replies and events say about jobs is folded in by its
``JobTracker`` (job_tracker.py); this module owns the socket, pending requests and liveness.
Liveness is a ping every ``heartbeat_s``: a DEALER socket never notices a dead peer by itself,
so any request unanswered for ``reply_timeout_s`` means the backend is gone (killed, crashed,
unreachable) and the session turns LOST with a clear error instead of hanging. ``connect``
again after that: live jobs are re-watched and finished ones fetched. A backend that comes back
before that (killed and restarted, or a network blip) is noticed by the client (a reconnected
socket, or a new ``instance_id`` in a ping reply): unanswered requests were sent again by it,
and the session says hello again, which re-watches live jobs and fetches results that finished
while the backend was away. ``poll(wait_s)`` may block, which only background (batch) mode asks
for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from shared_protocol.client import BackendClient, CurveKeys, error_from_wire
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import PROTOCOL_VERSION, Envelope
from shared_protocol.messages import (
    CancelReply,
    CancelRequest,
    DeleteReply,
    DeleteRequest,
    DownloadCancelRequest,
    DownloadRequest,
    DownloadStatusRequest,
    ErrorReply,
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    ListJobsReply,
    ListJobsRequest,
    LoadRequest,
    Message,
    PingReply,
    PingRequest,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    UnloadRequest,
)

from .compatibility import incompatibility_hint, version_in_refusal
from .job_tracker import JobTracker
from .records import (
    Connected,
    ConnectionState,
    Disconnected,
    ExtraFileReady,
    JobRecord,
    JobsListed,
    Notification,
    RequestFailed,
    client_error,
)
from .shelf import Shelf

FILE_SLICE_BYTES = 16 * 2**20  # per fetch of an extra file (a splat file can pass 50 MB)


@dataclass
class _Pending:
    """A request awaiting its reply: what it was, when it left, and what it was about."""

    action: str
    sent_at: float
    job_id: str | None = None
    submit: SubmitRequest | None = None
    file: str = ""  # fetch_file: the extra file's name


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
        self.tracker = JobTracker()
        self.shelf = Shelf()  # model states and downloads (client/shelf.py)
        self._client: BackendClient | None = None
        self._pending: dict[str, _Pending] = {}
        self._last_ping = 0.0
        self._restart_noticed = False  # set by the client; acted on in the next poll
        self._file_parts: dict[tuple[str, str], list[bytes]] = {}  # extra files on their way

    # --- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        """(Re)open the socket and send hello; the reply arrives through ``poll``."""
        self.close()
        # The tracker re-watches jobs itself (after hello), so the client need not follow them.
        self._client = BackendClient(
            self.address, curve=self.curve, follow_jobs=False, on_restart=self._noticed_restart
        )
        self._restart_noticed = False
        self.state = ConnectionState.CONNECTING
        self.error = None
        hello = HelloRequest(client_name="dreamcad-blender", client_version=self.client_version)
        self._send(hello, _Pending("hello", self._clock()))

    def adopt(self, old: Session) -> None:
        """Take over the jobs of the session this one replaces, if it spoke to the same address:
        once hello is answered, live ones are watched again and missed results fetched. Jobs of
        another backend are not carried over (their ids mean nothing here)."""
        if old.address == self.address:
            self.tracker.adopt(old.tracker)

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
    def jobs(self) -> dict[str, JobRecord]:
        """Every job this session knows of, by job id (kept by its JobTracker)."""
        return self.tracker.jobs

    @property
    def busy(self) -> bool:
        """True while something is on its way: the runtime ticks faster then."""
        live = self.tracker.live
        return bool(self._pending) or live or self.state is ConnectionState.CONNECTING

    # --- requests (all return at once) ----------------------------------------------------

    def submit(self, request: SubmitRequest) -> str:
        msg_id = self._send(request, _Pending("submit", self._clock(), submit=request))
        self.tracker.submit_sent(msg_id, request)
        return msg_id

    def cancel(self, job_id: str) -> None:
        self._send(CancelRequest(job_id=job_id), _Pending("cancel", self._clock(), job_id))

    def fetch(self, job_id: str) -> None:
        self._send(FetchRequest(job_id=job_id), _Pending("fetch", self._clock(), job_id))

    def fetch_file(self, job_id: str, name: str, offset: int = 0) -> None:
        """Fetch a result's extra file, a slice at a time (it may be larger than a frame):
        ``ExtraFileReady`` once it is whole."""
        if offset == 0:
            self._file_parts[(job_id, name)] = []
        limit = self.hello.max_frame_bytes if self.hello else FILE_SLICE_BYTES
        request = FetchRequest(job_id=job_id, file=name, offset=offset,
                               max_bytes=min(FILE_SLICE_BYTES, limit // 2))  # fmt: skip
        self._send(request, _Pending("fetch_file", self._clock(), job_id, file=name))

    def delete(self, job_id: str) -> None:
        self._send(DeleteRequest(job_id=job_id), _Pending("delete", self._clock(), job_id))

    def watch(self, job_id: str) -> None:
        request = StatusRequest(job_id=job_id, watch=True)
        self._send(request, _Pending("status", self._clock(), job_id))

    def list_jobs(self) -> None:
        self._send(ListJobsRequest(), _Pending("list_jobs", self._clock()))

    def download(self, model: str, components: tuple[str, ...] = ()) -> str:
        """The backend fetches the weights; the add-on never downloads anything itself."""
        request = DownloadRequest(model=model, components=components)
        return self._send(request, _Pending("shelf", self._clock()))

    def cancel_download(self, download_id: str) -> None:
        request = DownloadCancelRequest(download_id=download_id)
        self._send(request, _Pending("shelf", self._clock()))

    def load_model(self, model: str) -> None:
        self._send(LoadRequest(model=model), _Pending("shelf", self._clock()))

    def release_model(self, model: str) -> None:
        self._send(UnloadRequest(model=model), _Pending("shelf", self._clock()))

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
        if self._restart_noticed and self._client is not None:
            self._resynchronise()
        notes.extend(self._check_liveness())
        return notes

    def _noticed_restart(self, reason: str) -> None:
        """Called by the client (inside ``poll``) when the backend may have restarted."""
        self._restart_noticed = True

    def _resynchronise(self) -> None:
        """After a reconnect or a new backend instance: hello again, which re-watches jobs."""
        self._restart_noticed = False
        now = self._clock()
        for pending in self._pending.values():
            pending.sent_at = now  # the client sent each of them again just now
        self.tracker.connection_lost()  # progress is stale until the jobs report again
        if not any(p.action == "hello" for p in self._pending.values()):
            hello = HelloRequest(
                client_name="dreamcad-blender", client_version=self.client_version
            )
            self._send(hello, _Pending("hello", now))

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
        self.tracker.connection_lost()
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
            if self.shelf.event(message):
                return []
            return self.tracker.event(message, envelope.parent_id)
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
            return [self._incompatible(version_in_refusal(error.message))]
        self.tracker.submit_refused(envelope.parent_id or "")
        if pending.action == "hello":
            self.close()
            self.state = ConnectionState.LOST
            self.error = error_from_wire(error).info
            return [Disconnected(self.state, self.error)]
        info = error_from_wire(error).info
        if pending.action == "fetch_file":
            self._file_parts.pop((pending.job_id or "", pending.file), None)
        if pending.action in ("status", "fetch"):
            self.tracker.request_failed(pending.job_id, info)
        return [RequestFailed(pending.action, info, pending.job_id, envelope.parent_id or "")]

    def _on_hello(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, HelloReply)
        if message.protocol_version != PROTOCOL_VERSION:
            return [self._incompatible(message.protocol_version)]
        self.hello = message
        self.shelf.from_hello(message)
        self.state = ConnectionState.CONNECTED
        self._last_ping = self._clock()
        # Follow downloads that run (one started before a reconnect or a backend restart).
        self._send(DownloadStatusRequest(watch=True), _Pending("shelf", self._clock()))
        for job_id in self.tracker.to_watch():  # jobs from before a lost connection or restart
            self.watch(job_id)
        self.list_jobs()
        return [Connected(message)]

    def _on_submit(self, message: Message, pending: _Pending, env: Envelope) -> list[Notification]:
        assert isinstance(message, SubmitReply) and pending.submit is not None
        return self.tracker.submitted(message, pending.submit, env.parent_id or "")

    def _on_status(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, StatusReply)
        notes, fetch_now = self.tracker.status(message.job)
        if fetch_now:
            self.fetch(message.job.job_id)  # finished while we were away
        return notes

    def _on_list_jobs(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, ListJobsReply)
        for info in message.jobs:
            self.tracker.merge(info)
        return [JobsListed(tuple(info.job_id for info in message.jobs))]

    def _on_fetch(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, FetchReply)
        return self.tracker.result(message.job_id, message.manifest, message.asset,
                                   message.preview)

    def _on_fetch_file(self, message: Message, pending: _Pending,
                       _e: Envelope) -> list[Notification]:  # fmt: skip
        assert isinstance(message, FetchReply)
        key = (message.job_id, pending.file)
        parts = self._file_parts.get(key)
        if parts is None:
            return []  # from before a reconnect that started it again
        parts.append(message.asset)
        received = sum(len(part) for part in parts)
        if received < message.total_bytes and message.asset:
            self.fetch_file(message.job_id, pending.file, offset=received)
            return []
        del self._file_parts[key]
        return [ExtraFileReady(message.job_id, pending.file, b"".join(parts))]

    def _on_cancel(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, CancelReply)
        return self.tracker.cancelled(message.job_id, message.state)

    def _on_delete(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, DeleteReply)
        return self.tracker.deleted(message.job_id)

    def _on_ping(self, message: Message, _p: _Pending, _e: Envelope) -> list[Notification]:
        assert isinstance(message, PingReply)
        self.shelf.from_states(message.model_states)
        if self.hello is not None and message.gpus:
            self.hello = replace(self.hello, gpus=message.gpus)  # free VRAM changes as we run
        return []


