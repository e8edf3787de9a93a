"""event_bus.py: events from every thread reach clients, and nothing they leave behind keeps the
backend from shutting down.

A real backend process: a run of requests that publish events from the server thread (cancel,
delete) and from the worker (progress, results), then SIGTERM while a job runs. The process must
exit cleanly in under 2 s, and the running job must be waiting in the queue at the next start.
"""

from __future__ import annotations

import time

import pytest

from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    CancelRequest,
    DeleteRequest,
    FetchRequest,
    HelloRequest,
    JobFailedEvent,
    ListJobsRequest,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusRequest,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess

pytestmark = pytest.mark.slow

QUICK = {"resolution": 24, "steps": 4}
LONG = {"resolution": 256, "steps": 256}


def submit(client: BackendClient, params: dict, prompt: str = "a red torus") -> str:
    return client.request(
        SubmitRequest(
            model="procedural",
            task="text",
            prompt=prompt,
            parameters=params,
            target_faces=500,
            texture_size=256,
        ),
        timeout_s=30,
    ).job_id


def wait_for(client: BackendClient, job_id: str, kinds: tuple, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        if envelope and isinstance(envelope.message, kinds) and envelope.message.job_id == job_id:
            return envelope.message
    raise TimeoutError(f"no {kinds} for {job_id}")


def test_shutdown_is_clean_and_quick_after_cancel_delete_and_a_running_job(tmp_path) -> None:
    backend = BackendProcess(tmp_path / "data").start()
    try:
        with BackendClient(backend.address) as client:
            finished = submit(client, QUICK)
            assert isinstance(wait_for(client, finished, (ResultEvent,)), ResultEvent)
            running = submit(client, LONG, "a blue sphere")
            wait_for(client, running, (ProgressEvent,))
            queued = submit(client, QUICK, "a green cube")
            client.request(CancelRequest(job_id=queued))  # publishes from the server thread
            assert isinstance(wait_for(client, queued, (JobFailedEvent,)), JobFailedEvent)
            client.request(FetchRequest(job_id=finished), timeout_s=30)
            client.request(DeleteRequest(job_id=finished))  # so does delete
            for request in (
                StatusRequest(job_id=running, watch=True),
                ListJobsRequest(),
                PingRequest(),
                HelloRequest(client_name="test"),
            ):
                client.request(request, timeout_s=30)
        started = time.monotonic()
        backend.process.terminate()
        backend.process.wait(30)
        took = time.monotonic() - started
    finally:
        backend.kill()
    print(f"shutdown after SIGTERM took {took:.2f} s")
    assert backend.process.returncode == 0, backend.log()[-3000:]
    assert took < 2.0, f"shutdown took {took:.1f} s"

    # The job the shutdown interrupted waits for the next start, its attempt not counted.
    backend = BackendProcess(tmp_path / "data", port=backend.port).start()
    try:
        with BackendClient(backend.address) as client:
            status = client.request(StatusRequest(job_id=running), timeout_s=30).job
            assert status.state in ("queued", "running"), status
            assert status.attempts <= 1, status  # 1: claimed again by this start
            client.request(CancelRequest(job_id=running))
    finally:
        backend.stop()
