"""subscriptions.py: one subscription per (client, job), against a real backend process.

A client that watches a job hundreds of times gets each of its events once; a client that never
reads does not hold up anyone else, and what it missed is still in status and fetch.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import zmq

from shared_protocol.client import BackendClient
from shared_protocol.framing import encode
from shared_protocol.messages import (
    FetchReply,
    FetchRequest,
    ListJobsRequest,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusRequest,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess

pytestmark = pytest.mark.slow

MEDIUM = {"resolution": 64, "steps": 40}
WATCHES = 500


@pytest.fixture
def backend(tmp_path):
    with BackendProcess(tmp_path / "data") as process:
        yield process


def submit(client: BackendClient, params: dict, watch: bool = True) -> str:
    request = SubmitRequest(
        model="procedural",
        task="text",
        prompt="a purple capsule",
        parameters=params,
        target_faces=500,
        texture_size=256,
        watch=watch,
    )
    return client.request(request, timeout_s=30).job_id


def test_watching_one_job_many_times_sends_each_event_once(backend) -> None:
    with BackendClient(backend.address) as client, BackendClient(backend.address) as other:
        job_id = submit(client, MEDIUM)
        for _ in range(WATCHES):
            client.send(StatusRequest(job_id=job_id, watch=True))
        results = 0
        progress: Counter = Counter()
        slowest_ping = 0.0
        deadline = time.monotonic() + 60
        while results == 0 and time.monotonic() < deadline:
            started = time.monotonic()
            other.request(PingRequest(), timeout_s=30)
            slowest_ping = max(slowest_ping, time.monotonic() - started)
            for envelope in client.drain():
                message = envelope.message
                if isinstance(message, ResultEvent):
                    results += 1
                elif isinstance(message, ProgressEvent):
                    progress[(message.progress.stage, message.progress.step)] += 1
            time.sleep(0.05)
        time.sleep(1.0)  # any duplicates would be on their way by now
        results += sum(isinstance(e.message, ResultEvent) for e in client.drain())
    print(f"slowest ping while {WATCHES} watches were served: {slowest_ping * 1000:.0f} ms")
    assert results == 1
    assert progress and max(progress.values()) == 1, progress.most_common(3)


def test_a_client_that_never_reads_holds_up_no_one(backend) -> None:
    context = zmq.Context.instance()
    silent = context.socket(zmq.DEALER)
    silent.setsockopt(zmq.LINGER, 0)
    silent.setsockopt(zmq.RCVHWM, 1)
    silent.connect(backend.address)
    try:
        submitted = []
        for index in range(3):
            request = SubmitRequest(
                model="procedural",
                task="text",
                prompt="a red cube",
                parameters={"resolution": 48, "steps": 60},
                target_faces=500,
                texture_size=256,
                name=f"silent {index}",
            )
            silent.send_multipart(encode(request, msg_id=f"silent-{index}"))
            submitted.append(request.name)
        with BackendClient(backend.address) as reader:
            deadline = time.monotonic() + 60
            while True:  # the others are served while the silent client's events pile up
                jobs = reader.request(ListJobsRequest(limit=100), timeout_s=10).jobs
                finished = [j for j in jobs if j.name in submitted and j.state == "succeeded"]
                if len(finished) == len(submitted):
                    break
                assert time.monotonic() < deadline, [(j.name, j.state) for j in jobs]
                time.sleep(0.2)
            fetched = reader.request(FetchRequest(job_id=finished[0].job_id), timeout_s=30)
            assert isinstance(fetched, FetchReply) and fetched.asset[:4] == b"glTF"
    finally:
        silent.close(0)
