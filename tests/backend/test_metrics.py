"""metrics.py: real jobs on a real worker into a real store, scraped over real HTTP on loopback.

The values are checked against what the store recorded (counts go up by the jobs run, each
histogram's count is the jobs it observed and its sum their times). The end-to-end test with a
``serve`` process is in test_server_observability.py.
"""

from __future__ import annotations

import threading
import time

import pytest

from backend.metrics import BackendMetrics, MetricsAddressError, parse_address
from tests.support.job_runs import (
    MODEL_BUG,
    open_queue,
    registry_with_failing_model,
    run_jobs,
    spec,
)
from tests.support.prometheus import scrape, value


@pytest.fixture
def queue(tmp_path):
    queue = open_queue(tmp_path / "data")
    yield queue
    queue.store.close()


@pytest.fixture
def metrics(queue):
    metrics = BackendMetrics(queue.store, refresh_s=0.2)
    metrics.start("127.0.0.1:0")
    yield metrics
    metrics.close()


def url_of(metrics: BackendMetrics) -> str:
    host, port = metrics._http.server_address[:2]
    return f"http://{host}:{port}/metrics"


def test_jobs_run_are_counted_with_their_times(queue, metrics) -> None:
    registry = registry_with_failing_model()
    registry.cache_listeners.append(metrics.on_cache_event)
    before = scrape(url_of(metrics))
    assert (
        value(before, "dreamcad_jobs_finished_total", model="procedural", state="succeeded") is None
    )
    cancelled = queue.submit(spec(prompt="never runs"), ())[0].job_id
    queue.cancel(cancelled)
    run_jobs(queue, registry, [spec(), spec(prompt="a blue cube"), spec("failing", MODEL_BUG)])
    metrics.refresh()
    samples = scrape(url_of(metrics))

    def metric(name: str, **labels: str) -> float | None:
        return value(samples, name, **labels)

    assert metric("dreamcad_jobs_finished_total", model="procedural", state="succeeded") == 2
    assert metric("dreamcad_jobs_finished_total", model="procedural", state="cancelled") == 1
    assert metric("dreamcad_jobs_finished_total", model="failing", state="failed") == 1
    assert metric("dreamcad_job_errors_total", model="failing", code="model_failed") == 1
    assert metric("dreamcad_job_errors_total", model="procedural", code="cancelled") == 1
    # The store's view: every job by state and model, nothing left in the queue.
    assert metric("dreamcad_jobs", state="succeeded", model="procedural") == 2
    assert metric("dreamcad_jobs", state="running", model="procedural") == 0
    assert metric("dreamcad_queue_depth") == 0

    records = {r.job_id: r for r in queue.store.list(limit=100)}
    done = [r for r in records.values() if r.model == "procedural" and r.state == "succeeded"]
    for stage in done[0].manifest["timings_s"]:
        count = metric("dreamcad_stage_duration_seconds_count", model="procedural", stage=stage)
        total = metric("dreamcad_stage_duration_seconds_sum", model="procedural", stage=stage)
        assert count == 2, stage
        assert total == pytest.approx(sum(r.manifest["timings_s"][stage] for r in done))
    assert metric("dreamcad_stage_duration_seconds_count", model="procedural", stage="queue") == 2
    # GPU-seconds: the jobs that started (not the one cancelled in the queue), start to end.
    ran = [r for r in records.values() if r.model == "procedural" and r.started_at is not None]
    assert metric("dreamcad_job_gpu_seconds_count", model="procedural") == len(ran) == 2
    assert metric("dreamcad_job_gpu_seconds_sum", model="procedural") == pytest.approx(
        sum(r.finished_at - r.started_at for r in ran)
    )
    assert metric("dreamcad_job_duration_seconds_count", model="failing", state="failed") == 1
    # One load per model on the worker's device, and the unloads of the worker's shutdown.
    assert metric("dreamcad_model_loads_total", model="procedural", device="cpu") == 1
    assert metric("dreamcad_model_loads_total", model="failing", device="cpu") == 1
    assert metric("dreamcad_model_unloads_total", model="procedural", device="cpu") == 1
    assert metric("dreamcad_models_loaded", model="procedural", device="cpu") == 0
    assert metric("dreamcad_model_load_seconds_count", model="procedural") == 1

    # Looking again counts nothing twice; the follower thread finds new ends by itself.
    run_jobs(queue, registry, [spec(prompt="a green cone")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        again = scrape(url_of(metrics))
        done_now = value(
            again, "dreamcad_jobs_finished_total", model="procedural", state="succeeded"
        )
        if done_now != 2:
            break
        time.sleep(0.1)
    assert done_now == 3


def test_jobs_that_ended_before_the_start_are_not_counted(queue) -> None:
    run_jobs(queue, registry_with_failing_model(), [spec()])
    metrics = BackendMetrics(queue.store, refresh_s=0.2)
    metrics.start("127.0.0.1:0")
    try:
        samples = scrape(url_of(metrics))
    finally:
        metrics.close()
    assert value(samples, "dreamcad_jobs", state="succeeded", model="procedural") == 1
    counted = value(samples, "dreamcad_jobs_finished_total", model="procedural", state="succeeded")
    assert counted is None


def test_a_scrape_never_waits_for_the_store(queue, metrics) -> None:
    """The store's lock held (a long write, a busy worker): scrapes still answer at once."""
    queue.submit(spec(), ())
    metrics.refresh()
    with queue.store._lock:
        started = time.monotonic()
        for _ in range(5):
            samples = scrape(url_of(metrics), timeout_s=2)
        elapsed = time.monotonic() - started
    assert value(samples, "dreamcad_queue_depth") == 1
    assert elapsed < 2.0


def test_the_metrics_thread_survives_a_store_it_cannot_read(queue, metrics) -> None:
    queue.store.close()  # every query now raises
    time.sleep(0.5)
    assert any(t.name == "metrics" and t.is_alive() for t in threading.enumerate())
    assert value(scrape(url_of(metrics)), "dreamcad_queue_depth") == 0


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    assert parse_address("9464") == ("127.0.0.1", 9464)
    with pytest.raises(MetricsAddressError):
        parse_address("127.0.0.1:http")
    with pytest.raises(MetricsAddressError):
        parse_address("127.0.0.1:70000")
