"""The backend service: a ROUTER socket loop (decode -> dispatch -> reply) plus job events.

The server thread owns the ROUTER socket and does no GPU work. Workers publish job events from
their threads onto an in-process queue and ring an ``inproc`` bell; the loop forwards each event
to the clients subscribed to that job (the submitter, and any client that asked ``status`` with
``watch``). Any bad message gets a coded ``error_reply`` and the loop keeps serving. Binding a
non-loopback address requires CURVE keys (``dreamcad-backend keys``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from backend.handlers import HANDLERS, HandlerContext
from backend.jobs.queue import JobQueue
from backend.jobs.store import JobStore
from backend.jobs.worker import Worker
from backend.models.registry import ModelRegistry
from backend.settings import Settings
from backend.telemetry import detect_devices
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import DecodeError, decode, encode, split_identity
from shared_protocol.messages import (
    ErrorReply,
    JobFailedEvent,
    Message,
    ResultEvent,
)

log = logging.getLogger(__name__)

EVENT_BELL = "inproc://dreamcad-events"
RETENTION_INTERVAL_S = 3600.0
LOCAL_PREFIXES = ("tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://")


def is_loopback(address: str) -> bool:
    return address.startswith(LOCAL_PREFIXES)


class ConfigurationError(Exception):
    """The server cannot start as configured; the message says how to fix it."""


class EventBus:
    """Thread-safe publish from workers to the server thread (queue + inproc wake-up)."""

    def __init__(self, context: zmq.Context) -> None:
        self._context = context
        self._events: queue.SimpleQueue[tuple[str, Message]] = queue.SimpleQueue()
        self._local = threading.local()
        self.bell = context.socket(zmq.PULL)
        self.bell.bind(EVENT_BELL)

    def publish(self, job_id: str, message: Message) -> None:
        self._events.put((job_id, message))
        push = getattr(self._local, "push", None)
        if push is None:  # zmq sockets are not thread-safe: one PUSH per publishing thread
            push = self._context.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(EVENT_BELL)
            self._local.push = push
        push.send(b"", zmq.NOBLOCK)

    def drain(self) -> list[tuple[str, Message]]:
        while self.bell.poll(0):
            self.bell.recv()
        items = []
        while True:
            try:
                items.append(self._events.get_nowait())
            except queue.Empty:
                return items


class BackendServer:
    def __init__(self, settings: Settings, registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry()
        self.context = zmq.Context()
        self.store = JobStore(settings.db_path, settings.jobs_dir)
        self.events = EventBus(self.context)
        self.queue = JobQueue(
            self.store,
            self.events.publish,
            retention=settings.retention,
            max_queued=settings.max_queued_jobs,
        )
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 1000)
        # A hard cap far above the checked limit: bigger messages are dropped by zmq itself,
        # smaller ones over the limit get a coded error.
        limits = settings.limits
        self.router.setsockopt(
            zmq.MAXMSGSIZE, 4 * limits.max_frame_bytes * max(1, limits.max_frames)
        )
        self._subscribers: dict[str, list[tuple[bytes, str]]] = defaultdict(list)
        self._authenticator: ThreadAuthenticator | None = None
        self._stop = threading.Event()
        self.workers: list[Worker] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, recover jobs a crash left running, expire old results, start the workers."""
        self._configure_security()
        self.router.bind(self.settings.address)
        self.queue.recover()
        self.queue.expire()
        devices = self.settings.devices or detect_devices()
        for device in devices:
            worker = Worker(
                self.queue, self.registry, device, self._stop, self.settings.vram_budget_mb
            )
            worker.start()
            self.workers.append(worker)
        if self.settings.warm_up_kernels:
            threading.Thread(target=_warm_up_kernels, name="warm-up", daemon=True).start()
        log.info("serving on %s with workers on %s", self.settings.address, ", ".join(devices))

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.events.bell, zmq.POLLIN)
        next_expiry = time.monotonic() + RETENTION_INTERVAL_S
        while not self._stop.is_set():
            ready = dict(poller.poll(200))
            if self.router in ready:
                for _ in range(100):  # bounded, so events are never starved by a flood
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    self._handle(frames)
            if self.events.bell in ready:
                self._forward_events()
            if time.monotonic() >= next_expiry:
                next_expiry = time.monotonic() + RETENTION_INTERVAL_S
                self.queue.expire()
        self._forward_events()

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake_all()

    def close(self) -> None:
        self.stop()
        for worker in self.workers:
            worker.join(timeout=30)
        if self._authenticator is not None:
            self._authenticator.stop()
        self.router.close(linger=500)
        self.events.bell.close(linger=0)
        self.store.close()
        self.context.term()

    # --- messages -------------------------------------------------------------------------

    def _handle(self, frames: list[bytes]) -> None:
        try:
            identity, payload = split_identity(frames)
        except ProtocolError:
            return  # nothing to reply to
        msg_id: str | None = None
        try:
            envelope = decode(payload, self.settings.limits)
            msg_id = envelope.msg_id
            handler = HANDLERS.get(type(envelope.message))
            if handler is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_MESSAGE_TYPE,
                    f"{envelope.type} is not a request the backend accepts",
                    field="type",
                )
            context = HandlerContext(
                queue=self.queue,
                registry=self.registry,
                limits=self.settings.limits,
                subscribe=lambda job_id: self._subscribers[job_id].append(
                    (identity, envelope.msg_id)
                ),
            )
            reply = handler(context, envelope.message)
        except DecodeError as error:
            msg_id = error.msg_id
            reply = ErrorReply(error=error.info)
        except ProtocolError as error:
            reply = ErrorReply(error=error.info)
        except Exception as error:  # a bug: report it, keep serving
            log.exception("handler failed")
            reply = ErrorReply(error=ProtocolError(ErrorCode.INTERNAL_ERROR, f"{error!r}").info)
        self.router.send_multipart([identity, *encode(reply, parent_id=msg_id)], copy=False)

    def _forward_events(self) -> None:
        for job_id, message in self.events.drain():
            subscribers = self._subscribers.get(job_id, [])
            for identity, parent_id in subscribers:
                self.router.send_multipart(
                    [identity, *encode(message, parent_id=parent_id)], copy=False
                )
            if isinstance(message, (ResultEvent, JobFailedEvent)):
                self._subscribers.pop(job_id, None)

    # --- security -------------------------------------------------------------------------

    def _configure_security(self) -> None:
        address, curve_dir = self.settings.address, self.settings.curve_dir
        if curve_dir is None:
            if not is_loopback(address):
                raise ConfigurationError(
                    f"refusing to serve {address} without authentication: anyone on the network "
                    "could use this GPU and read results. Run `dreamcad-backend keys` and start "
                    "with --curve-keys DIR, or bind tcp://127.0.0.1:PORT and tunnel over SSH."
                )
            return
        server_secret = Path(curve_dir) / "server.key_secret"
        authorized = Path(curve_dir) / "authorized_clients"
        if not server_secret.is_file() or not authorized.is_dir():
            raise ConfigurationError(
                f"{curve_dir} has no server.key_secret or authorized_clients/: "
                f"run `dreamcad-backend keys --dir {curve_dir}`"
            )
        public, secret = zmq.auth.load_certificate(server_secret)
        self._authenticator = ThreadAuthenticator(self.context)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=str(authorized))
        self.router.curve_server = True
        self.router.curve_publickey = public
        self.router.curve_secretkey = secret


def _warm_up_kernels() -> None:
    """Compile (or load from cache) the geometry kernels before the first job needs them."""
    from backend.geometry.warmup import warm_up

    try:
        warm_up()
    except Exception:  # a failed warm-up only means the first job compiles; never fatal
        log.exception("geometry warm-up failed; the first job will compile the kernels")
