"""ownership.py and idempotent submits, against real backend processes.

With CURVE keys, a job belongs to the key that submitted it: another key gets ``forbidden`` for
status, cancel, delete and fetch, and does not see it listed; an operator key sees and fetches
everything. A submit repeated with the same ``request_key``, or the same message sent again
(a retry after a timeout, even across a kill -9 and restart), answers with the first job.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from shared_protocol.client import BackendClient, CurveKeys
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import decode, encode
from shared_protocol.messages import (
    CancelRequest,
    DeleteRequest,
    FetchReply,
    FetchRequest,
    ListJobsRequest,
    ResultEvent,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)
from tests.support.backend_process import REPO, BackendProcess, backend_python

pytestmark = pytest.mark.slow

QUICK = {"resolution": 24, "steps": 4}


def make_keys(folder: Path, *names: str) -> None:
    for name in names:
        subprocess.run(
            [backend_python(), "-m", "backend.cli", "keys", "--dir", str(folder),
             "--client-name", name],
            cwd=REPO, check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def curve(folder: Path, name: str) -> CurveKeys:
    server_public, _ = zmq.auth.load_certificate(folder / "server.key")
    public, secret = zmq.auth.load_certificate(folder / f"{name}.key_secret")
    return CurveKeys(server_public=server_public, client_public=public, client_secret=secret)


def quick_job(**changes) -> SubmitRequest:
    values = dict(
        model="procedural",
        task="text",
        prompt="a yellow cone",
        parameters=QUICK,
        target_faces=500,
        texture_size=256,
    )
    return SubmitRequest(**{**values, **changes})


def wait_result(client: BackendClient, job_id: str, timeout_s: float = 60.0) -> ResultEvent:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope.message if envelope else None
        if isinstance(message, ResultEvent) and message.job_id == job_id:
            return message
    raise TimeoutError(job_id)


def refusal(client: BackendClient, request) -> str:
    with pytest.raises(ProtocolError) as caught:
        client.request(request, timeout_s=30)
    return caught.value.code.value


@pytest.fixture
def keys(tmp_path) -> Path:
    folder = tmp_path / "keys"
    make_keys(folder, "alice", "bob", "admin")
    return folder


def test_another_key_cannot_see_or_touch_a_job(tmp_path, keys) -> None:
    with (
        BackendProcess(tmp_path / "data", "--curve-keys", str(keys)) as backend,
        BackendClient(backend.address, curve=curve(keys, "alice")) as alice,
        BackendClient(backend.address, curve=curve(keys, "bob")) as bob,
    ):
        job_id = alice.request(quick_job(request_key="k1"), timeout_s=30).job_id
        wait_result(alice, job_id)
        for request in (
            StatusRequest(job_id=job_id),
            FetchRequest(job_id=job_id),
            CancelRequest(job_id=job_id),
            DeleteRequest(job_id=job_id),
        ):
            assert refusal(bob, request) == ErrorCode.FORBIDDEN.value, request
        # Nor can bob optimize alice's job again from its kept raw output.
        again = SubmitRequest(model="mesh-optimize", task="optimize", source_job=job_id)
        assert refusal(bob, again) == ErrorCode.FORBIDDEN.value
        listed = bob.request(ListJobsRequest(), timeout_s=30).jobs
        assert job_id not in [job.job_id for job in listed]
        # A request key is the owner's own: bob's "k1" is a job of his.
        bobs = bob.request(quick_job(request_key="k1"), timeout_s=30).job_id
        assert bobs != job_id
        mine = [job.job_id for job in alice.request(ListJobsRequest(), timeout_s=30).jobs]
        assert job_id in mine and bobs not in mine
        fetched = alice.request(FetchRequest(job_id=job_id), timeout_s=30)
        assert isinstance(fetched, FetchReply) and fetched.asset[:4] == b"glTF"
        alice.request(DeleteRequest(job_id=job_id), timeout_s=30)


def test_an_operator_key_sees_and_fetches_every_job(tmp_path, keys) -> None:
    operator = ("--operator-key", str(keys / "admin.key"))
    with (
        BackendProcess(tmp_path / "data", "--curve-keys", str(keys), *operator) as backend,
        BackendClient(backend.address, curve=curve(keys, "alice")) as alice,
        BackendClient(backend.address, curve=curve(keys, "admin")) as admin,
    ):
        job_id = alice.request(quick_job(), timeout_s=30).job_id
        wait_result(alice, job_id)
        listed = admin.request(ListJobsRequest(), timeout_s=30).jobs
        assert job_id in [job.job_id for job in listed]
        fetched = admin.request(FetchRequest(job_id=job_id), timeout_s=30)
        assert isinstance(fetched, FetchReply) and fetched.job_id == job_id


def test_operator_key_without_curve_is_refused(tmp_path, keys) -> None:
    result = subprocess.run(
        [backend_python(), "-m", "backend.cli", "serve", "--address", "tcp://127.0.0.1:0",
         "--data-dir", str(tmp_path / "data"), "--operator-key", str(keys / "admin.key")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "--curve-keys" in result.stderr


def test_a_request_key_makes_a_submit_idempotent(tmp_path) -> None:
    with BackendProcess(tmp_path / "data") as backend, BackendClient(backend.address) as client:
        first = client.request(quick_job(request_key="scene-7/chair"), timeout_s=30)
        result = wait_result(client, first.job_id)
        again = client.request(quick_job(request_key="scene-7/chair"), timeout_s=30)
        assert isinstance(again, SubmitReply)
        assert (again.job_id, again.seed) == (first.job_id, first.seed)
        # The repeat watches too: the job has ended, so its end comes again.
        assert wait_result(client, first.job_id).asset == result.asset
        other = client.request(quick_job(request_key="scene-7/table"), timeout_s=30)
        assert other.job_id != first.job_id
        jobs = client.request(ListJobsRequest(), timeout_s=30).jobs
        assert sorted(job.job_id for job in jobs) == sorted({first.job_id, other.job_id})
        # The key comes back with the job: a client finds its jobs by it after a restart.
        keys = {job.job_id: job.request_key for job in jobs}
        assert keys == {first.job_id: "scene-7/chair", other.job_id: "scene-7/table"}
        status = client.request(StatusRequest(job_id=first.job_id), timeout_s=30)
        assert status.job.request_key == "scene-7/chair"


def send_raw(address: str, frames: list[bytes]) -> SubmitReply:
    """One message on a fresh socket, as a client retrying after a timeout would send it."""
    with zmq.Context.instance().socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        socket.send_multipart(frames)
        assert socket.poll(30_000), "no reply"
        reply = decode(socket.recv_multipart()).message
    assert isinstance(reply, SubmitReply), reply
    return reply


def test_the_same_message_sent_again_makes_no_second_job(tmp_path) -> None:
    frames = encode(quick_job(prompt="a white sphere"), msg_id="retry-me-1")
    backend = BackendProcess(tmp_path / "data").start()
    try:
        first = send_raw(backend.address, frames)
        assert send_raw(backend.address, frames).job_id == first.job_id
        backend.kill()  # the job store remembers across a crash
        backend = BackendProcess(tmp_path / "data", port=backend.port).start()
        assert send_raw(backend.address, frames).job_id == first.job_id
        with BackendClient(backend.address) as client:
            jobs = client.request(ListJobsRequest(), timeout_s=30).jobs
        assert [job.job_id for job in jobs] == [first.job_id]
    finally:
        backend.stop()
