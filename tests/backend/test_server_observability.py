"""``serve --metrics-address`` and ``serve --log-json`` in a real backend process.

Real jobs on the built-in models over a real ZeroMQ client; the metrics scraped over real HTTP
on loopback; every line of the JSON log parsed.
"""

from __future__ import annotations

import json
import time

import pytest

from backend.models.builtin.testing import TINY_PARAMETERS
from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    CancelRequest,
    ImageInput,
    JobFailedEvent,
    ProgressEvent,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)
from tests.support.backend_process import REPO, BackendProcess, free_port
from tests.support.prometheus import scrape, value

pytestmark = pytest.mark.slow

QUICK = {"resolution": 48, "steps": 6}
LONG = {"resolution": 320, "steps": 320}  # seconds of real work, one slab per step


def submit(client: BackendClient, model: str = "procedural", **kwargs) -> str:
    reply = client.request(
        SubmitRequest(model=model, target_faces=2000, texture_size=256, **kwargs), timeout_s=10
    )
    assert isinstance(reply, SubmitReply), reply
    return reply.job_id


def wait_end(client: BackendClient, job_id: str, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope.message if envelope else None
        if isinstance(message, ResultEvent | JobFailedEvent) and message.job_id == job_id:
            return message
    raise TimeoutError(f"job {job_id} did not end")


def wait_started(client: BackendClient, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope.message if envelope else None
        if (
            isinstance(message, ProgressEvent)
            and message.job_id == job_id
            and message.progress.stage == "field"
        ):
            return
    raise TimeoutError(f"job {job_id} did not start")


def scrape_until(url: str, ready, timeout_s: float = 15):
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(url)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_metrics_of_real_jobs(tmp_path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        BackendProcess(tmp_path / "data", "--metrics-address", f"127.0.0.1:{port}") as backend,
        BackendClient(backend.address) as client,
    ):
        assert value(scrape(url), "dreamcad_queue_depth") == 0
        manifests = []
        for prompt in ("a red torus", "a blue cube"):
            job_id = submit(client, task="text", prompt=prompt, parameters=QUICK)
            result = wait_end(client, job_id)
            assert isinstance(result, ResultEvent)
            manifests.append(result.manifest)
        image = (REPO / "backend" / "assets" / "example.png").read_bytes()
        inflate = submit(client, "inflate", task="image", images=(ImageInput(data=image),),
                         parameters=TINY_PARAMETERS["inflate"])  # fmt: skip
        assert isinstance(wait_end(client, inflate), ResultEvent)

        # One long job holds the only worker: the next waits in the queue.
        running = submit(client, task="text", prompt="a long torus", parameters=LONG)
        wait_started(client, running)
        waiting = submit(client, task="text", prompt="a waiting cube", parameters=QUICK)
        busy = scrape_until(url, lambda s: value(s, "dreamcad_queue_depth") == 1)
        assert value(busy, "dreamcad_queue_depth") == 1
        assert value(busy, "dreamcad_jobs", state="running", model="procedural") == 1
        assert value(busy, "dreamcad_worker_busy", device="cpu") == 1
        for job_id in (waiting, running):
            client.request(CancelRequest(job_id=job_id))
            assert isinstance(wait_end(client, job_id), JobFailedEvent)

        samples = scrape_until(
            url,
            lambda s: (
                value(s, "dreamcad_job_errors_total", model="procedural", code="cancelled") == 2
            ),
        )

    def metric(name: str, **labels: str) -> float | None:
        return value(samples, name, **labels)

    assert metric("dreamcad_jobs_finished_total", model="procedural", state="succeeded") == 2
    assert metric("dreamcad_jobs_finished_total", model="inflate", state="succeeded") == 1
    assert metric("dreamcad_jobs_finished_total", model="procedural", state="cancelled") == 2
    assert metric("dreamcad_job_errors_total", model="procedural", code="cancelled") == 2
    assert metric("dreamcad_queue_depth") == 0
    assert metric("dreamcad_jobs", state="cancelled", model="procedural") == 2
    # Histograms: one observation per job, and the stage sums are the manifests' timings.
    for stage in manifests[0].timings_s:
        assert metric("dreamcad_stage_duration_seconds_count", model="procedural", stage=stage) == 2
        assert metric(
            "dreamcad_stage_duration_seconds_sum", model="procedural", stage=stage
        ) == pytest.approx(sum(m.timings_s[stage] for m in manifests), abs=1e-3)
    assert metric("dreamcad_stage_duration_seconds_count", model="inflate", stage="generate") == 1
    assert metric("dreamcad_job_duration_seconds_count", model="procedural", state="succeeded") == 2
    # The cancelled running job held the device; the one cancelled in the queue never did.
    assert metric("dreamcad_job_gpu_seconds_count", model="procedural") == 3
    assert metric("dreamcad_model_loads_total", model="procedural", device="cpu") == 1
    assert metric("dreamcad_model_loads_total", model="inflate", device="cpu") == 1
    assert metric("dreamcad_models_loaded", model="inflate", device="cpu") == 1


def test_metrics_address_in_use_is_a_clear_error(tmp_path) -> None:
    port = free_port()
    with BackendProcess(tmp_path / "first", "--metrics-address", f"127.0.0.1:{port}"):
        second = BackendProcess(tmp_path / "second", "--metrics-address", f"127.0.0.1:{port}")
        with pytest.raises(RuntimeError, match=r"cannot serve metrics on 127\.0\.0\.1"):
            second.start()


def test_json_logs_name_the_job_on_every_line(tmp_path) -> None:
    backend = BackendProcess(tmp_path / "data", "--log-json").start()
    with BackendClient(backend.address) as client:
        job_id = submit(client, task="text", prompt="a red torus", parameters=QUICK)
        assert isinstance(wait_end(client, job_id), ResultEvent)
        other = submit(client, task="text", prompt="a blue cube", parameters=QUICK)
        assert isinstance(wait_end(client, other), ResultEvent)
    backend.stop()

    lines = backend.log().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(entries) == len(lines) > 5
    for entry in entries:
        assert {"time", "level", "logger", "message", "thread"} <= set(entry)
        for job in (job_id, other):
            if job in entry["message"]:
                assert entry.get("job_id") == job, entry
    for job in (job_id, other):
        about = [e for e in entries if e.get("job_id") == job]
        messages = [e["message"] for e in about]
        assert any("queued" in m for m in messages)
        assert any(m.startswith(f"job {job} done") for m in messages)
        assert {e["thread"] for e in about} == {"MainThread", "worker-cpu"}
        # Whatever the worker logs while running it names it, whichever logger logged it.
        start = next(i for i, e in enumerate(entries) if e["message"].startswith(f"job {job}: "))
        end = next(i for i, e in enumerate(entries) if e["message"].startswith(f"job {job} done"))
        worker_lines = [e for e in entries[start : end + 1] if e["thread"] == "worker-cpu"]
        assert all(e.get("job_id") == job for e in worker_lines), worker_lines
    assert any("serving on" in e["message"] for e in entries)
    assert any(e["message"] == "stopped" for e in entries)
