"""client.py against real backend processes: a kill -9 and a fast restart are not silent.

Twenty clients each wait for their job; the backend is killed (SIGKILL) while most jobs are
still queued and started again at once on the same port and data. ZeroMQ reconnects the sockets
by itself; the clients must notice, watch their jobs again, and every one must see its result
(pushed, or fetched for a job that ended while they were away), each exactly once.
"""

from __future__ import annotations

import time

import pytest

from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    JobFailedEvent,
    PingReply,
    PingRequest,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess

pytestmark = pytest.mark.slow

CLIENTS = 20
QUICK = {"resolution": 24, "steps": 4}
RESULTS_WITHIN_S = 120.0  # after the restart; generous for a loaded 2-core machine


def test_kill_9_and_fast_restart_every_waiting_client_sees_its_result(tmp_path) -> None:
    backend = BackendProcess(tmp_path / "data").start()
    clients = [BackendClient(backend.address) for _ in range(CLIENTS)]
    try:
        first_instance = clients[0].request(PingRequest(), timeout_s=30).instance_id
        job_of: dict[int, str] = {}
        for index, client in enumerate(clients):
            reply = client.request(
                SubmitRequest(
                    model="procedural",
                    task="text",
                    prompt=f"a red torus {index}",
                    parameters=QUICK,
                    target_faces=500,
                    texture_size=256,
                ),
                timeout_s=30,
            )
            assert isinstance(reply, SubmitReply)
            job_of[index] = reply.job_id
        ends: dict[int, list] = {index: [] for index in job_of}

        def collect() -> None:
            for index, client in enumerate(clients):
                for envelope in client.drain():
                    message = envelope.message
                    if isinstance(message, (ResultEvent, JobFailedEvent)):
                        assert message.job_id == job_of[index], "another client's job"
                        ends[index].append(message)

        while not any(ends.values()):  # the first result: the worker is under way
            collect()
            time.sleep(0.02)
        backend.kill()
        before_kill = sum(bool(e) for e in ends.values())
        killed_at = time.monotonic()
        backend = BackendProcess(tmp_path / "data", port=backend.port).start()
        up_after = time.monotonic() - killed_at

        deadline = time.monotonic() + RESULTS_WITHIN_S
        while not all(ends.values()) and time.monotonic() < deadline:
            collect()
            time.sleep(0.05)
        all_after = time.monotonic() - killed_at
        time.sleep(1.0)  # a duplicate end would be on its way by now
        collect()
        print(
            f"{before_kill}/{CLIENTS} jobs ended before the kill; backend up again after "
            f"{up_after:.1f} s; every client had its result {all_after:.1f} s after the kill"
        )
        missing = sorted(job_of[i] for i, e in ends.items() if not e)
        assert not missing, f"{len(missing)} of {CLIENTS} clients never saw their job end"
        assert before_kill < CLIENTS, "every job ended before the kill: the test proves nothing"
        for index, received in ends.items():
            assert len(received) == 1, (index, received)
            assert isinstance(received[0], ResultEvent), received[0]
            assert received[0].asset[:4] == b"glTF"
        pong = clients[0].request(PingRequest(), timeout_s=30)
        assert isinstance(pong, PingReply) and pong.instance_id != first_instance
        assert all(client.restarts >= 1 for client in clients)
    finally:
        for client in clients:
            client.close()
        backend.stop()
