"""A ZeroMQ DEALER client of the backend, shared by the Blender add-on and the backend's CLI.

It never blocks unless asked to: ``send`` queues a request, ``drain`` returns what has arrived
without waiting (what a Blender timer tick calls), and ``request`` waits for one reply, keeping
any events that arrive meanwhile for the next ``drain``. Replies are matched to requests by the
header's ``parent_id``. An ``error_reply`` becomes a ProtocolError carrying the server's code.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import zmq

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.framing import DEFAULT_LIMITS, Envelope, Limits, decode, encode, new_msg_id
from shared_protocol.messages import ErrorReply, Message


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
    ) -> None:
        self.address = address
        self.limits = limits
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self._socket.curve_serverkey = curve.server_public
            self._socket.curve_publickey = curve.client_public
            self._socket.curve_secretkey = curve.client_secret
        self._socket.connect(address)
        self._inbox: collections.deque[Envelope] = collections.deque()
        self.undecodable: list[ProtocolError] = []  # what the server sent that we could not read

    def send(self, message: Message, *, msg_id: str | None = None) -> str:
        """Queue ``message`` for the backend and return its msg_id (never waits)."""
        msg_id = msg_id or new_msg_id()
        self._socket.send_multipart(encode(message, msg_id=msg_id), copy=False)
        return msg_id

    def receive(self, timeout_s: float = 0.0) -> Envelope | None:
        """Return the next message, waiting at most ``timeout_s``; None if nothing came."""
        if self._inbox:
            return self._inbox.popleft()
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(remaining_ms, zmq.POLLIN):
                return None
            envelope = self._read_one()
            if envelope is not None:
                return envelope
            if time.monotonic() >= deadline:
                return None

    def drain(self) -> list[Envelope]:
        """Everything that has arrived, without waiting."""
        received = list(self._inbox)
        self._inbox.clear()
        while self._socket.poll(0, zmq.POLLIN):
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
            while (remaining := deadline - time.monotonic()) > 0:
                if not self._socket.poll(int(remaining * 1000) + 1, zmq.POLLIN):
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
        self._socket.close(linger=0)

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_one(self) -> Envelope | None:
        frames = self._socket.recv_multipart(copy=True)
        try:
            return decode(frames, self.limits)
        except ProtocolError as error:
            if error.code is ErrorCode.PROTOCOL_VERSION_MISMATCH:
                raise  # nothing else this backend says can be read either
            self.undecodable.append(error)
            return None


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
