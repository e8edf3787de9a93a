"""Prometheus metrics for ``serve --metrics-address HOST:PORT``, fed from the job store.

The job store is where every job's end is recorded, whichever worker ran it (a local thread or
a Ray actor), so the metrics follow the store rather than any one kind of worker: a thread
(``metrics``) reads, about once a second, the jobs per (state, model) and the jobs that ended
since its last look, and turns each newly ended job into counter and histogram observations
(its stage times, its GPU-seconds: jobs/stats.py). Model loads and unloads come from the model
caches' listeners (``ModelRegistry.cache_listeners``; a remote worker can forward its own
``CacheEvent``s to ``on_cache_event``), GPU memory from NVML and from torch in this process.
Under ``serve --ray`` the dispatcher's events feed the Ray actors' loads, unloads and
placements in (cluster/observe.py).

A scrape only reads what that thread last computed: it runs in the HTTP server's own thread,
against its own ``CollectorRegistry``, takes no lock the server loop or the workers hold and
never queries SQLite, so neither a slow scraper nor a busy store can hold the other up.
Counters start at zero with each start of the backend (Prometheus' ``rate`` and ``increase``
expect that); jobs that ended before it are the store's history (``dreamcad-backend stats``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from backend.jobs.stats import device_seconds, error_code, stage_seconds
from backend.jobs.store import JobRecord, JobStore
from backend.models.registry import CacheEvent
from backend.telemetry import gpu_info
from backend.torch_loaded import loaded_torch
from shared_protocol.messages import WorkerHealth

log = logging.getLogger(__name__)

REFRESH_S = 1.0
# Jobs are looked for this far back behind the newest end seen: an end is written with the time
# it was decided, which can be a little before the moment another thread commits it.
OVERLAP_S = 30.0
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
# From a built-in model's fraction of a second to a large model's minutes on a slow GPU.
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class MetricsAddressError(ValueError):
    """``--metrics-address`` is not HOST:PORT."""


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; a bare ``PORT`` means 127.0.0.1) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", address
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise MetricsAddressError(f"--metrics-address takes HOST:PORT, got {address!r}") from None
    if not 0 <= number <= 65535:
        raise MetricsAddressError(f"--metrics-address port {number} is out of range")
    return host, number


@dataclass
class _Snapshot:
    """What the metrics thread last read; a scrape reads only this (replaced whole, not edited)."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (state, model) -> jobs
    # (NVML index, name, used bytes, total bytes) per GPU
    gpus: list[tuple[str, str, float, float]] = field(default_factory=list)
    # device -> (allocated, reserved) bytes of torch in this process
    allocated: dict[str, tuple[float, float]] = field(default_factory=dict)
    workers: tuple[WorkerHealth, ...] = ()


class _SnapshotCollector(Collector):
    def __init__(self, metrics: BackendMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._metrics.snapshot
        jobs = GaugeMetricFamily(
            "dreamcad_jobs", "Jobs in the job store, by state and model", labels=["state", "model"]
        )
        models = sorted({model for _, model in snapshot.jobs})
        for model in models:
            for state in JOB_STATES:
                jobs.add_metric([state, model], snapshot.jobs.get((state, model), 0))
        yield jobs
        depth = sum(count for (state, _), count in snapshot.jobs.items() if state == "queued")
        yield GaugeMetricFamily("dreamcad_queue_depth", "Jobs waiting for a worker", value=depth)
        used = GaugeMetricFamily(
            "dreamcad_gpu_memory_used_bytes",
            "GPU memory in use (NVML, every process)",
            labels=["gpu", "name"],
        )
        total = GaugeMetricFamily(
            "dreamcad_gpu_memory_total_bytes", "GPU memory (NVML)", labels=["gpu", "name"]
        )
        for index, name, used_bytes, total_bytes in snapshot.gpus:
            used.add_metric([index, name], used_bytes)
            total.add_metric([index, name], total_bytes)
        yield used
        yield total
        allocated = GaugeMetricFamily(
            "dreamcad_vram_allocated_bytes",
            "VRAM torch has allocated in the backend process",
            labels=["device"],
        )
        reserved = GaugeMetricFamily(
            "dreamcad_vram_reserved_bytes",
            "VRAM torch's allocator holds in the backend process",
            labels=["device"],
        )
        for device, (alloc, rsv) in snapshot.allocated.items():
            allocated.add_metric([device], alloc)
            reserved.add_metric([device], rsv)
        yield allocated
        yield reserved
        up = GaugeMetricFamily(
            "dreamcad_worker_up", "1 while a device's worker is alive", labels=["device"]
        )
        busy = GaugeMetricFamily(
            "dreamcad_worker_busy", "1 while a device's worker runs a job", labels=["device"]
        )
        for worker in snapshot.workers:
            up.add_metric([worker.device], 1 if worker.alive else 0)
            busy.add_metric([worker.device], 1 if worker.job_id else 0)
        yield up
        yield busy


class BackendMetrics:
    """The backend's metrics registry, the thread that keeps it current, and its HTTP endpoint."""

    def __init__(
        self,
        store: JobStore,
        workers: Callable[[], tuple[WorkerHealth, ...]] | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._store = store
        self._workers = workers
        self._refresh_s = refresh_s
        self.registry = CollectorRegistry()
        self.snapshot = _Snapshot()
        self._stop = threading.Event()
        self._refreshing = threading.Lock()  # one look at a time: a job is counted once
        self._thread: threading.Thread | None = None
        self._http = None
        self._watermark = 0.0  # the newest end counted (set at start)
        self._seen: dict[str, float] = {}  # job id -> its end, for the overlap window
        self._make_instruments()
        self.registry.register(_SnapshotCollector(self))

    def _make_instruments(self) -> None:
        registry = self.registry
        self.finished = Counter(
            "dreamcad_jobs_finished",
            "Jobs that ended since the backend started",
            ["model", "state"],
            registry=registry,
        )
        self.errors = Counter(
            "dreamcad_job_errors",
            "Jobs that failed or were cancelled, by error code",
            ["model", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "dreamcad_job_duration_seconds",
            "Submit to end, per model and final state",
            ["model", "state"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.gpu_seconds = Histogram(
            "dreamcad_job_gpu_seconds",
            "Seconds each job held its worker's device (a GPU, or the CPU worker)",
            ["model"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.stages = Histogram(
            "dreamcad_stage_duration_seconds",
            "Seconds per stage of succeeded jobs (queue, load, generate, pipeline.*)",
            ["model", "stage"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.loads = Counter(
            "dreamcad_model_loads",
            "Models loaded onto a device",
            ["model", "device"],
            registry=registry,
        )
        self.unloads = Counter(
            "dreamcad_model_unloads",
            "Models unloaded from a device",
            ["model", "device"],
            registry=registry,
        )
        self.load_seconds = Histogram(
            "dreamcad_model_load_seconds",
            "Seconds to load a model",
            ["model"],
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.loaded = Gauge(
            "dreamcad_models_loaded",
            "Models loaded now, per device",
            ["model", "device"],
            registry=registry,
        )
        self.placements = Counter(
            "dreamcad_placement",
            "Jobs placed on a Ray actor, hit: whether it held the job's model already",
            ["hit"],
            registry=registry,
        )
        self.loaded_vram = Gauge(
            "dreamcad_models_declared_vram_bytes",
            "VRAM the loaded models declare on their cards, per device",
            ["device"],
            registry=registry,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, address: str) -> tuple[str, int]:
        """Serve ``/metrics`` on ``address`` and start following the store; the bound address."""
        host, port = parse_address(address)
        if host not in LOOPBACK_HOSTS:
            log.warning(
                "metrics on %s:%d are readable by anyone who can reach it (model names, job "
                "counts): keep that address on a private network",
                host,
                port,
            )
        # Jobs that ended before this start were counted by the backend that ran them.
        self._watermark = time.time()
        for job_id, end in self._store.ended_since(self._watermark - OVERLAP_S):
            self._seen[job_id] = end
        self.refresh()
        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        self._thread = threading.Thread(target=self._follow, name="metrics", daemon=True)
        self._thread.start()
        bound = self._http.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        self._stop.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2 * self._refresh_s + 1)

    def _follow(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                self.refresh()
            except Exception:  # a locked or full store: try again next time, never fatal
                log.warning("metrics not refreshed", exc_info=True)

    # --- feeding --------------------------------------------------------------------------

    def refresh(self) -> None:
        """One look at the store, the GPUs and the workers (the metrics thread; tests)."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        jobs = self._store.counts_by_state_and_model()
        self._observe_finished()
        self.snapshot = _Snapshot(
            jobs=jobs,
            gpus=[
                (
                    str(gpu.index),
                    gpu.name,
                    (gpu.memory_total_mb - gpu.memory_free_mb) * 2.0**20,
                    gpu.memory_total_mb * 2.0**20,
                )
                for gpu in gpu_info()
            ],
            allocated=_torch_memory(),
            workers=self._workers() if self._workers else (),
        )

    def _observe_finished(self) -> None:
        # Ids first (cheap, every second); whole rows only for the few jobs not counted yet.
        for job_id, end in self._store.ended_since(self._watermark - OVERLAP_S):
            if job_id in self._seen:
                continue
            record = self._store.get(job_id)
            if record is None or record.finished_at is None:  # deleted, or requeued since
                continue
            self._seen[job_id] = end
            self._watermark = max(self._watermark, end)
            self.observe_job(record)
        cutoff = self._watermark - OVERLAP_S
        self._seen = {job_id: end for job_id, end in self._seen.items() if end >= cutoff}

    def observe_job(self, record: JobRecord) -> None:
        """Count one ended job: its state, error code, durations and stage times."""
        model, state = record.model, record.state
        self.finished.labels(model, state).inc()
        if state != "succeeded":
            self.errors.labels(model, error_code(record)).inc()
        times = stage_seconds(record)
        if "total" in times:
            self.duration.labels(model, state).observe(times["total"])
        if record.started_at is not None:
            self.gpu_seconds.labels(model).observe(device_seconds(record))
        if state == "succeeded":
            for stage, seconds in times.items():
                if stage not in ("run", "total"):  # those two have their own histograms
                    self.stages.labels(model, stage).observe(seconds)

    def on_cache_event(self, event: CacheEvent) -> None:
        """A model was loaded or unloaded (a listener of ``ModelRegistry.cache_listeners``)."""
        vram = event.vram_mb * 2.0**20
        if event.kind == "load":
            self.loads.labels(event.model_id, event.device).inc()
            self.load_seconds.labels(event.model_id).observe(event.seconds)
            self.loaded.labels(event.model_id, event.device).inc()
            self.loaded_vram.labels(event.device).inc(vram)
        elif event.kind == "unload":
            self.unloads.labels(event.model_id, event.device).inc()
            self.loaded.labels(event.model_id, event.device).dec()
            self.loaded_vram.labels(event.device).dec(vram)


def _torch_memory() -> dict[str, tuple[float, float]]:
    """device -> (allocated, reserved) bytes, only where a model already started CUDA here."""
    torch = loaded_torch()
    if torch is None or not torch.cuda.is_initialized():
        return {}
    return {
        f"cuda:{i}": (float(torch.cuda.memory_allocated(i)), float(torch.cuda.memory_reserved(i)))
        for i in range(torch.cuda.device_count())
    }
