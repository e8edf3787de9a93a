"""A ZeroMQ DEALER client of the backend, shared by the Blender add-on and the backend's CLI.

It never blocks unless asked to: ``send`` queues a request, ``drain`` returns what has arrived
without waiting (what a Blender timer tick calls), and ``request`` waits for one reply, keeping
any events that arrive meanwhile for the next ``drain``. Replies are matched to requests by the
header's ``parent_id``. An ``error_reply`` becomes a ProtocolError carrying the server's code.

A backend restart is not silent. ZeroMQ reconnects the socket by itself, but the new backend
knows nothing of this client: its subscriptions lived in the old one's memory, and requests in
flight died with it. The client watches its socket's connection events, and the ``instance_id``
that hello and ping replies carry; when the socket comes back, or the instance id changes, it
sends every unanswered request again under its own msg_id (the backend answers a repeated submit
with the job the first one made), and, with ``follow_jobs`` on, re-checks every job it is
waiting on with ``status_request {watch: true}``: a job still live is watched again; one that
ended meanwhile is delivered as the ``result_event`` (fetched) or ``job_failed_event`` it would
have been, so code waiting for a job's end sees it either way. ``on_restart`` is told too.
A job's end is delivered once per request that subscribed to it (a message the backend got twice
because it was sent again does not end a job twice).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.framing import DEFAULT_LIMITS, Envelope, Limits, decode, encode, new_msg_id
from shared_protocol.messages import (
    FINISHED_STATES,
    DeleteReply,
    ErrorReply,
    FetchReply,
    FetchRequest,
    HelloReply,
    JobFailedEvent,
    Message,
    PingReply,
    ResultEvent,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)

_MONITORED = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
_REMEMBERED = 100_000  # unanswered requests and delivered job ends kept (oldest forgotten)


@dataclass(frozen=True)
class CurveKeys:
    """Z85-encoded CURVE keys for talking to a backend bound on a non-loopback address."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes


class BackendClient:
    """One connection to one backend address."""

    def __init__(
        self,
        address: str,
        *,
        curve: CurveKeys | None = None,
        limits: Limits = DEFAULT_LIMITS,
        context: zmq.Context | None = None,
        follow_jobs: bool = True,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.limits = limits
        self.follow_jobs = follow_jobs
        self.on_restart = on_restart
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self._socket.curve_serverkey = curve.server_public
            self._socket.curve_publickey = curve.client_public
            self._socket.curve_secretkey = curve.client_secret
        self._monitor = self._socket.get_monitor_socket(_MONITORED)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._socket.connect(address)
        self._inbox: collections.deque[Envelope] = collections.deque()
        self.undecodable: list[ProtocolError] = []  # what the server sent that we could not read
        self.instance_id: str | None = None  # the backend run we last heard from
        self.restarts = 0  # reconnections and new instances seen
        self._disconnected = False
        self._unanswered: collections.OrderedDict[str, tuple[Message, list[bytes]]] = (
            collections.OrderedDict()
        )
        self._followed: dict[str, str] = {}  # job id -> msg_id of the request that subscribed
        self._own: dict[str, str] = {}  # msg_id -> job id, of the re-checks we sent ourselves
        # (job id, subscribing msg_id) of every end delivered, so none is delivered twice.
        self._ended: collections.OrderedDict[tuple[str, str | None], None] = (
            collections.OrderedDict()
        )

    # --- sending and receiving --------------------------------------------------------------

    def send(self, message: Message, *, msg_id: str | None = None) -> str:
        """Queue ``message`` for the backend and return its msg_id (never waits)."""
        msg_id = msg_id or new_msg_id()
        frames = encode(message, msg_id=msg_id)
        self._unanswered[msg_id] = (message, frames)
        while len(self._unanswered) > _REMEMBERED:
            self._unanswered.popitem(last=False)
        self._socket.send_multipart(frames, copy=False)
        return msg_id

    def receive(self, timeout_s: float = 0.0) -> Envelope | None:
        """Return the next message, waiting at most ``timeout_s``; None if nothing came."""
        if self._inbox:
            return self._inbox.popleft()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._wait(deadline):
                envelope = self._read_one()
                if envelope is not None:
                    return envelope
            if time.monotonic() >= deadline:
                return None

    def drain(self) -> list[Envelope]:
        """Everything that has arrived, without waiting."""
        received = list(self._inbox)
        self._inbox.clear()
        while self._wait(time.monotonic()):
            envelope = self._read_one()
            if envelope is not None:
                received.append(envelope)
        return received

    def request(self, message: Message, timeout_s: float = 10.0) -> Message:
        """Send ``message`` and wait for its reply; other messages stay queued for ``drain``.

        Raises ProtocolError with the server's code on an error_reply, TIMEOUT when none came.
        """
        msg_id = self.send(message)
        deadline = time.monotonic() + timeout_s
        held: list[Envelope] = []
        try:
            while time.monotonic() < deadline:
                if not self._wait(deadline):
                    continue
                envelope = self._read_one()
                if envelope is None:
                    continue
                if envelope.parent_id != msg_id or envelope.type.endswith("_event"):
                    held.append(envelope)
                    continue
                return raise_if_error(envelope.message)
        finally:
            self._inbox.extend(held)
        raise ProtocolError(
            ErrorCode.TIMEOUT,
            f"no reply to {message.TYPE} from {self.address} within {timeout_s:g} s",
        )

    def close(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the socket and its connection events -----------------------------------------------

    def _wait(self, deadline: float) -> bool:
        """Poll until the deadline; handle connection events; True when a message is ready."""
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(self._poller.poll(remaining_ms))
            if self._monitor in ready:
                self._connection_events()
            if self._socket in ready:
                return True
            if self._monitor not in ready or time.monotonic() >= deadline:
                return False

    def _connection_events(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self._disconnected = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED and self._disconnected:
                self._disconnected = False
                self.instance_id = None  # whatever answers next is the new baseline
                self._restarted("reconnected")

    def _read_one(self) -> Envelope | None:
        frames = self._socket.recv_multipart(copy=True)
        try:
            envelope = decode(frames, self.limits)
        except ProtocolError as error:
            if error.code is ErrorCode.PROTOCOL_VERSION_MISMATCH:
                raise  # nothing else this backend says can be read either
            self.undecodable.append(error)
            return None
        if envelope.type.endswith("_event"):
            return self._on_event(envelope)
        return self._on_reply(envelope)

    # --- what replies and events tell us ----------------------------------------------------

    def _on_reply(self, envelope: Envelope) -> Envelope | None:
        parent_id = envelope.parent_id or ""
        sent = self._unanswered.pop(parent_id, None)
        if parent_id in self._own:
            return self._on_own_reply(self._own.pop(parent_id), envelope)
        if sent is None:
            return None  # the second answer to a request sent again after a reconnect
        message = envelope.message
        if isinstance(message, (HelloReply, PingReply)) and message.instance_id:
            self._saw_instance(message.instance_id)
        request = sent[0]
        if isinstance(message, SubmitReply) and isinstance(request, SubmitRequest):
            if request.watch:
                self._follow(message.job_id, parent_id)
        elif isinstance(message, StatusReply) and isinstance(request, StatusRequest):
            if request.watch and message.job.state not in FINISHED_STATES:
                self._follow(message.job.job_id, parent_id)
        elif isinstance(message, DeleteReply):
            self._followed.pop(message.job_id, None)
        return envelope

    def _on_event(self, envelope: Envelope) -> Envelope | None:
        message = envelope.message
        if isinstance(message, (ResultEvent, JobFailedEvent)):
            if (message.job_id, envelope.parent_id) in self._ended:
                return None  # delivered already (a re-check, or a request the backend got twice)
            self._end(message.job_id, envelope.parent_id)
        return envelope

    def _follow(self, job_id: str, parent_id: str) -> None:
        self._followed.setdefault(job_id, parent_id)

    def _end(self, job_id: str, parent_id: str | None) -> None:
        self._followed.pop(job_id, None)
        self._ended[(job_id, parent_id)] = None
        while len(self._ended) > _REMEMBERED:
            self._ended.popitem(last=False)

    def _saw_instance(self, instance_id: str) -> None:
        known, self.instance_id = self.instance_id, instance_id
        if known is not None and known != instance_id:
            self._restarted("new backend instance")

    def _restarted(self, reason: str) -> None:
        """The backend may have lost our requests and subscriptions: send and watch again."""
        self.restarts += 1
        for _message, frames in list(self._unanswered.values()):
            self._socket.send_multipart(frames, copy=False)
        if self.follow_jobs:
            for job_id in list(self._followed):
                self._send_own(job_id, StatusRequest(job_id=job_id, watch=True))
        if self.on_restart is not None:
            self.on_restart(reason)

    # --- re-checking followed jobs ----------------------------------------------------------

    def _send_own(self, job_id: str, message: Message) -> None:
        msg_id = new_msg_id()
        self._own[msg_id] = job_id
        self._unanswered[msg_id] = (message, encode(message, msg_id=msg_id))
        self._socket.send_multipart(self._unanswered[msg_id][1], copy=False)

    def _on_own_reply(self, job_id: str, envelope: Envelope) -> Envelope | None:
        """A reply to a re-check: turn a job that ended meanwhile into the event it missed."""
        parent_id = self._followed.get(job_id)
        if parent_id is None:
            return None  # its end arrived as a real event first
        message = envelope.message
        if isinstance(message, ErrorReply):  # forgotten (deleted, expired) or refused
            ended: Message = JobFailedEvent(job_id=job_id, state="failed", error=message.error)
        elif isinstance(message, StatusReply):
            job = message.job
            if job.state not in FINISHED_STATES:
                return None  # watched again: its events come as usual
            if job.state == "succeeded":
                self._send_own(job_id, FetchRequest(job_id=job_id))
                return None
            error = job.error or ErrorInfo(code=ErrorCode.INTERNAL_ERROR.value, message=job.state)
            ended = JobFailedEvent(job_id=job_id, state=job.state, error=error)
        elif isinstance(message, FetchReply):
            ended = ResultEvent(
                job_id=job_id,
                manifest=message.manifest,
                asset=message.asset,
                preview=message.preview,
            )
        else:
            return None
        self._end(job_id, parent_id)
        return Envelope(ended, envelope.msg_id, parent_id, envelope.sent_at)


def raise_if_error(message: Message) -> Message:
    """Return ``message``, or raise its error if it is an error_reply."""
    if isinstance(message, ErrorReply):
        raise error_from_wire(message.error)
    return message


def error_from_wire(error: ErrorInfo) -> ProtocolError:
    """A received error as an exception; a code newer than this client reads as internal."""
    try:
        code = ErrorCode(error.code)
    except ValueError:
        code = ErrorCode.INTERNAL_ERROR
    return ProtocolError(code, error.message, field=error.field, hint=error.hint)
