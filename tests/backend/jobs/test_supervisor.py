"""supervisor.py: a worker thread that dies anyway is replaced, its job retried, and ping says so.

The server runs in this process (real ROUTER socket, real SQLite, real worker threads) so the
test can kill the worker thread the way a bug would: CPython's ``PyThreadState_SetAsyncExc``
raises SystemExit inside it mid-job, which no ``except Exception`` catches.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator

import pytest

from backend.models.registry import ModelRegistry
from backend.server import BackendServer
from backend.settings import Settings
from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    JobFailedEvent,
    PingReply,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusRequest,
    SubmitRequest,
)
from tests.support.backend_process import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path) -> Iterator[BackendServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        address=f"tcp://127.0.0.1:{free_port()}",
        devices=("cpu",),
        warm_up_kernels=False,
        min_free_mb=0,
    )
    server = BackendServer(settings, ModelRegistry())
    server.start()
    loop = threading.Thread(target=server.serve_forever, name="server-loop", daemon=True)
    loop.start()
    yield server
    server.stop()
    loop.join(10)
    server.close()


def kill_thread(thread: threading.Thread) -> None:
    """Raise SystemExit inside ``thread`` at its next bytecode, as a bug escaping it would."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit)
    )
    assert done == 1, "no such thread"


def worker_thread() -> threading.Thread:
    (worker,) = [t for t in threading.enumerate() if t.name == "worker-cpu"]
    return worker


def test_a_dead_worker_is_restarted_and_its_job_retried(server: BackendServer) -> None:
    with BackendClient(server.settings.address) as client:
        request = SubmitRequest(
            model="procedural",
            task="text",
            prompt="a pink capsule",
            parameters={"resolution": 96, "steps": 60},
            target_faces=500,
            texture_size=256,
        )
        job_id = client.request(request, timeout_s=30).job_id
        deadline = time.monotonic() + 60
        while True:
            envelope = client.receive(timeout_s=0.5)
            if envelope and isinstance(envelope.message, ProgressEvent):
                break
            assert time.monotonic() < deadline, "the job never started"
        kill_thread(worker_thread())

        deadline = time.monotonic() + 60
        ended = None
        while ended is None and time.monotonic() < deadline:
            envelope = client.receive(timeout_s=0.5)
            message = envelope.message if envelope else None
            if isinstance(message, (ResultEvent, JobFailedEvent)) and message.job_id == job_id:
                ended = message
        assert isinstance(ended, ResultEvent), f"the job did not finish: {ended}"
        status = client.request(StatusRequest(job_id=job_id), timeout_s=30).job
        assert status.attempts == 2  # once in the dead worker, once in its successor
        # The result event is sent before the worker lets go of the job: poll, bounded.
        deadline = time.monotonic() + 10
        while True:
            pong = client.request(PingRequest(), timeout_s=30)
            assert isinstance(pong, PingReply)
            (health,) = pong.workers
            if health.job_id is None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert health.alive and health.restarts == 1 and health.job_id is None
        assert "SystemExit" in health.last_error
