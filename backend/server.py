"""The backend service: a ROUTER socket loop (decode -> dispatch -> reply) plus job events.

The server thread owns the ROUTER socket and does no GPU work. Workers publish job events from
their threads onto the event bus (event_bus.py); the loop forwards each to the clients
subscribed to that job (subscriptions.py). Any bad message gets a coded ``error_reply`` and the
loop keeps serving; a full disk anywhere is ``disk_full``. Each start has a new ``instance_id``
(in hello and ping replies) so clients can tell a restart from a blip. The loop also keeps the
workers alive (supervisor.py) and the disk reserve made. Sends never block: a client that stops
reading loses what would overflow its queue (``SEND_QUEUE_MESSAGES``); a client that has gone
loses its subscriptions. Binding a non-loopback address requires CURVE keys
(``dreamcad-backend keys``); with them, each job belongs to the key that submitted it
(ownership.py). With ``Settings.metrics_address`` it also serves Prometheus metrics from its own
thread (metrics.py).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from backend import job_priority
from backend.disk_space import disk_full_error, free_mb, is_disk_full
from backend.downloads.manager import DownloadManager
from backend.event_bus import EventBus
from backend.handlers import HANDLERS, HandlerContext
from backend.jobs.pool import WorkerPool, WorkersFactory
from backend.jobs.queue import JobQueue
from backend.jobs.store import JobStore
from backend.jobs.supervisor import WorkerSupervisor
from backend.model_shelf import ModelShelf
from backend.models.registry import ModelRegistry
from backend.ownership import Caller, caller_of, load_operator_keys
from backend.settings import Settings
from backend.subscriptions import Subscriptions
from backend.telemetry import detect_devices
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import DecodeError, decode, encode, split_identity
from shared_protocol.messages import (
    DownloadFinishedEvent,
    ErrorReply,
    JobFailedEvent,
    ResultEvent,
)

if TYPE_CHECKING:
    from backend.metrics import BackendMetrics

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600.0
RESERVE_INTERVAL_S = 10.0
LOCAL_PREFIXES = ("tcp://127.", "tcp://localhost:", "tcp://[::1]:", "ipc://", "inproc://")
# Messages queued for one client before the ROUTER drops more (ZeroMQ's SNDHWM is per peer).
# Events carry whole assets, so this bounds a non-reading client's memory to about this many.
SEND_QUEUE_MESSAGES = 100
WORKER_JOIN_S = 1.0  # at shutdown; a job cancelled by it goes back to the queue
DROP_LOG_INTERVAL_S = 10.0


def is_loopback(address: str) -> bool:
    return address.startswith(LOCAL_PREFIXES)


class ConfigurationError(Exception):
    """The server cannot start as configured; the message says how to fix it."""


class BackendServer:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry | None = None,
        *,
        workers: WorkersFactory | None = None,
    ) -> None:
        """``workers`` builds the pool that runs jobs (default: a thread per local device)."""
        self.settings = settings
        self.registry = registry or ModelRegistry()
        self.instance_id = uuid.uuid4().hex
        self.store = JobStore(settings.db_path, settings.jobs_dir)
        self.events = EventBus()
        self.queue = JobQueue(
            self.store,
            self.events.publish,
            retention=settings.retention,
            max_queued=settings.max_queued_jobs,
            min_free_mb=settings.min_free_mb,
            max_queued_per_client=settings.max_queued_per_client,
        )
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, SEND_QUEUE_MESSAGES)
        # Sends fail at once (instead of dropping silently) for gone or flooded clients.
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A hard cap far above the checked limit: bigger messages are dropped by zmq itself,
        # smaller ones over the limit get a coded error.
        limits = settings.limits
        self.router.setsockopt(
            zmq.MAXMSGSIZE, 4 * limits.max_frame_bytes * max(1, limits.max_frames)
        )
        self.subscriptions = Subscriptions()
        self._authenticator: ThreadAuthenticator | None = None
        self._operator_keys = load_operator_keys(settings.operator_keys)
        self._stop = threading.Event()
        self.supervisor: WorkerPool = (
            workers(self.queue, self.registry, self._stop)
            if workers is not None
            else WorkerSupervisor(
                self.queue,
                self.registry,
                settings.devices or detect_devices(),
                self._stop,
                settings.device_budgets_mb or settings.vram_budget_mb,
            )
        )
        self.downloads = DownloadManager(
            settings.data_dir / "downloads.sqlite3", self.registry, self.events.publish
        )
        self.shelf = ModelShelf(self.registry, self.downloads, self.supervisor.workers)
        self._dropped = 0
        self._last_drop_log = 0.0
        self.metrics: BackendMetrics | None = None
        if settings.metrics_address is not None:
            from backend.metrics import BackendMetrics  # prometheus only when asked for

            self.metrics = BackendMetrics(self.store, self.supervisor.health)
            self.registry.cache_listeners.append(self.metrics.on_cache_event)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind, recover jobs a crash left running, expire old results, start the workers."""
        self._configure_security()
        self.router.bind(self.settings.address)
        self._housekeeping("recovering jobs", self.queue.recover)
        self._housekeeping("expiring old results", self.queue.expire)
        if self.metrics is not None:
            try:
                host, port = self.metrics.start(self.settings.metrics_address)
            except (OSError, ValueError) as error:
                raise ConfigurationError(
                    f"cannot serve metrics on {self.settings.metrics_address}: {error}"
                ) from error
            log.info("metrics on http://%s:%d/metrics", host, port)
        self.supervisor.start()
        self.downloads.start()  # a download a stop interrupted resumes
        if self.settings.warm_up_kernels:
            devices = [h.device for h in self.supervisor.health()]
            threading.Thread(
                target=_warm_up_kernels, args=(devices,), name="warm-up", daemon=True
            ).start()
        log.info(
            "serving on %s (instance %s) with workers on %s",
            self.settings.address,
            self.instance_id[:8],
            ", ".join(h.device for h in self.supervisor.health()),
        )

    def disk_warning(self) -> str | None:
        """A sentence for the operator when the data disk is full or at the free-space floor."""
        free = free_mb(self.settings.data_dir)
        floor = self.settings.min_free_mb
        if free is None or (free > floor and self.store.reserve.held):
            return None
        return (
            f"the disk holding {self.settings.data_dir} has {free:.1f} MB free (floor "
            f"{floor:g} MB): new jobs may be refused with disk_full until space is freed; "
            "status, fetch and delete work"
        )

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.events.fileno(), zmq.POLLIN)
        next_expiry = time.monotonic() + RETENTION_INTERVAL_S
        next_reserve = time.monotonic() + RESERVE_INTERVAL_S
        while not self._stop.is_set():
            ready = dict(poller.poll(200))
            if self.router in ready:
                for _ in range(100):  # bounded, so events are never starved by a flood
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(frames)
            self._forward_events()
            self.supervisor.check()
            now = time.monotonic()
            if now >= next_expiry:
                next_expiry = now + RETENTION_INTERVAL_S
                self._housekeeping("expiring old results", self.queue.expire)
            if now >= next_reserve:
                next_reserve = now + RESERVE_INTERVAL_S
                self.store.reserve.ensure()
        self._forward_events()

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler: it only sets a flag)."""
        self._stop.set()

    def close(self) -> None:
        """Stop workers (running jobs go back to the queue), close every socket, end zmq."""
        self.stop()
        self.queue.interrupt()
        self.queue.wake_all()
        self.supervisor.join(WORKER_JOIN_S)
        if self.metrics is not None:
            self.metrics.close()
        self.downloads.close()
        if self._authenticator is not None:
            self._authenticator.stop()
        self.router.close(linger=0)
        self.events.close()
        self.store.close()
        self.context.term()

    # --- messages -------------------------------------------------------------------------

    def _handle(self, frames: list[zmq.Frame]) -> None:
        try:
            identity, payload = split_identity([frame.bytes for frame in frames])
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
            context = self._context_for(frames[-1], identity, envelope.msg_id)
            reply = handler(context, envelope.message)
        except DecodeError as error:
            msg_id = error.msg_id
            reply = ErrorReply(error=error.info)
        except ProtocolError as error:
            reply = ErrorReply(error=error.info)
        except Exception as error:
            if is_disk_full(error):
                log.warning("request failed on a full disk: %s", error)
                full = disk_full_error(self.settings.data_dir, "the request could not be stored")
                reply = ErrorReply(error=full.info)
            else:  # a bug: report it, keep serving
                log.exception("handler failed")
                info = ProtocolError(ErrorCode.INTERNAL_ERROR, f"{error!r}").info
                reply = ErrorReply(error=info)
        self._send(identity, encode(reply, parent_id=msg_id))

    def _context_for(self, frame: zmq.Frame, identity: bytes, msg_id: str) -> HandlerContext:
        caller: Caller = caller_of(frame, self._authenticator is not None, self._operator_keys)
        return HandlerContext(
            queue=self.queue,
            registry=self.registry,
            limits=self.settings.limits,
            subscribe=lambda job_id: self.subscriptions.add(job_id, identity, msg_id),
            caller=caller,
            msg_id=msg_id,
            instance_id=self.instance_id,
            workers=self.supervisor.health,
            disk_free_mb=lambda: free_mb(self.settings.data_dir),
            shelf=self.shelf,
        )

    def _forward_events(self) -> None:
        for job_id, message in self.events.drain():
            for identity, parent_id in self.subscriptions.of(job_id):
                self._send(identity, encode(message, parent_id=parent_id))
            if isinstance(message, (ResultEvent, JobFailedEvent, DownloadFinishedEvent)):
                self.subscriptions.end_job(job_id)

    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        """Send without ever blocking the loop; a gone client loses its subscriptions."""
        try:
            self.router.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
        except zmq.Again:  # the client's queue is full: it is not reading
            self._dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
                self._last_drop_log = now
                log.warning(
                    "dropped %d message(s) for clients that are not reading (events are best "
                    "effort; status and fetch still have the truth)",
                    self._dropped,
                )
        except zmq.ZMQError as error:
            if error.errno != errno.EHOSTUNREACH:
                raise
            self.subscriptions.drop_client(identity)

    def _housekeeping(self, what: str, action) -> None:
        """Start-up and periodic chores; a full disk postpones them instead of stopping us."""
        try:
            action()
        except Exception as error:
            if not is_disk_full(error):
                raise
            log.warning("%s postponed: the disk is full (%s)", what, error)

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
            if self._operator_keys:
                raise ConfigurationError(
                    "--operator-key needs --curve-keys: without keys every local client is the "
                    "same user and already sees every job"
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


def _warm_up_kernels(devices: list[str]) -> None:
    """Compile (or load from cache) the geometry kernels before the first job needs them: the
    CPU's, and the compiled torch stages of the workers' CUDA devices."""
    from backend.geometry.warmup import warm_up

    try:
        with job_priority.background():  # it gives way to jobs (job_priority.py)
            warm_up(devices=devices)
    except Exception:  # a failed warm-up only means the first job compiles; never fatal
        log.exception("geometry warm-up failed; the first job will compile the kernels")
