"""client/session.py: the non-blocking conversation, against a real backend.

Where no real peer can show a behaviour (a backend of another protocol version; nothing ever
answering) a tiny ROUTER socket in the test plays the peer over a real socket.
"""

from __future__ import annotations

import time

from shared_protocol.errors import ErrorCode
from shared_protocol.framing import PROTOCOL_VERSION, decode, encode
from shared_protocol.messages import ErrorReply, SubmitRequest
from tests.support.backend_process import BackendProcess, free_port


def poll_until(session, condition, timeout_s: float = 30.0) -> list:
    notes = []
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"session stuck in {session.state}"
        notes += session.poll(wait_s=0.05)
    return notes


def test_connect_lists_models_with_schemas(addon, backend) -> None:
    client = addon.client
    session = client.Session(backend.address)
    session.connect()
    notes = poll_until(session, lambda: session.state is not client.ConnectionState.CONNECTING)
    assert session.connected, session.error
    assert any(type(n).__name__ == "Connected" for n in notes)
    procedural = next(m for m in session.hello.models if m.id == "procedural")
    assert "text" in procedural.tasks
    assert {p.name for p in procedural.parameters} >= {"steps"}
    session.close()


def test_refused_submit_is_a_request_failure_with_the_field(addon, backend) -> None:
    client = addon.client
    session = client.Session(backend.address)
    session.connect()
    poll_until(session, lambda: session.connected)
    msg_id = session.submit(SubmitRequest(model="no-such-model", task="text", prompt="x"))
    notes: list = []
    deadline = time.monotonic() + 10
    while not any(type(n).__name__ == "RequestFailed" for n in notes):
        assert time.monotonic() < deadline, "no reply to the submit"
        notes += session.poll(wait_s=0.05)
    failure = next(n for n in notes if type(n).__name__ == "RequestFailed")
    assert failure.action == "submit" and failure.msg_id == msg_id
    assert failure.error.code == ErrorCode.UNKNOWN_MODEL.value
    assert failure.error.field == "body.model"
    assert session.connected  # a refused request is not a lost connection
    session.close()


def test_a_new_session_adopts_the_jobs_of_the_same_backend_only(addon) -> None:
    client = addon.client
    address = f"tcp://127.0.0.1:{free_port()}"
    old = client.Session(address)
    old.tracker.jobs["j1"] = client.JobRecord("j1", "torus", "procedural", "torus", "text", 1)
    old.close()
    again = client.Session(address)
    again.adopt(old)
    assert list(again.jobs) == ["j1"] and again.tracker.to_watch() == ["j1"]
    elsewhere = client.Session(f"tcp://127.0.0.1:{free_port()}")
    elsewhere.adopt(old)
    assert elsewhere.jobs == {}  # job ids of another backend mean nothing there


def test_nothing_listening_turns_lost_with_a_fix(addon) -> None:
    client = addon.client
    session = client.Session(f"tcp://127.0.0.1:{free_port()}", reply_timeout_s=0.5)
    session.connect()
    notes = poll_until(session, lambda: session.state is client.ConnectionState.LOST)
    (lost,) = [n for n in notes if type(n).__name__ == "Disconnected"]
    assert lost.error.code == ErrorCode.BACKEND_UNREACHABLE.value
    assert "no backend answers" in lost.error.message
    assert "Retry" in lost.error.hint
    assert session.poll() == []  # closed: nothing more to read, and no exception


def test_newer_backend_says_upgrade_the_addon(addon, peer_factory) -> None:
    """A backend speaking a newer protocol answers in its own framing."""
    newer = PROTOCOL_VERSION + 1
    peer = peer_factory(lambda frames: [f"dreamcad/{newer}".encode(), frames[1]])
    client = addon.client
    session = client.Session(peer.address)
    session.connect()
    poll_until(session, lambda: session.state is not client.ConnectionState.CONNECTING)
    assert session.state is client.ConnectionState.INCOMPATIBLE
    assert session.error.code == ErrorCode.PROTOCOL_VERSION_MISMATCH.value
    assert f"protocol {newer}" in session.error.message
    assert "upgrade the Dream CAD add-on" in session.error.hint


def test_older_backend_says_upgrade_the_backend(addon, peer_factory) -> None:
    """A backend that cannot read our version answers with a typed error reply."""

    def refuse(frames):
        request = decode(frames)
        error = ErrorReply(error=addon.client.records.client_error(
            ErrorCode.PROTOCOL_VERSION_MISMATCH, "message speaks protocol 1; this side speaks 0"))
        return encode(error, parent_id=request.msg_id)

    peer = peer_factory(refuse)
    client = addon.client
    session = client.Session(peer.address)
    session.connect()
    poll_until(session, lambda: session.state is not client.ConnectionState.CONNECTING)
    assert session.state is client.ConnectionState.INCOMPATIBLE
    assert "upgrade the backend" in session.error.hint



def test_a_fast_restart_is_noticed_and_every_job_ends(addon, tmp_path) -> None:
    """kill -9, then the backend is back within seconds: well inside the reply timeout, so the
    session never turns LOST; it must still notice, and no job may stay "running" for ever."""
    client = addon.client
    backend = BackendProcess(tmp_path / "backend").start()
    session = client.Session(backend.address, reply_timeout_s=300)
    try:
        session.connect()
        poll_until(session, lambda: session.connected)
        for index in range(8):
            session.submit(SubmitRequest(
                model="procedural", task="text", prompt=f"a blue cube {index}",
                parameters={"resolution": 24, "steps": 4}, target_faces=500, texture_size=256))
        poll_until(session, lambda: len(session.jobs) == 8
                   and any(j.result_received for j in session.jobs.values()), timeout_s=60)
        backend.kill()
        backend = BackendProcess(tmp_path / "backend", port=backend.port).start()
        notes = poll_until(session, lambda: all(
            j.state == "succeeded" and j.result_received for j in session.jobs.values()),
            timeout_s=120)
        assert session.connected  # never LOST: the restart was handled, not timed out
        assert not any(type(n).__name__ == "Disconnected" for n in notes)
        ready = [n.job_id for n in notes if type(n).__name__ == "ResultReady"]
        assert len(ready) == len(set(ready))  # each result delivered once
    finally:
        session.close()
        backend.stop()
