"""The backend in a real subprocess, driven by a real ZeroMQ client over loopback TCP.

Covers submit -> progress -> result, cancel mid-job, kill -9 and restart with nothing lost,
disconnect/reconnect then fetch, and every malformed input getting its code while the server
keeps serving. The model is the built-in ``procedural`` one: it computes real geometry step by
step, so progress and cancellation are exercised for real.
"""

from __future__ import annotations

import io
import json
import time

import pytest
import zmq
from PIL import Image

from shared_protocol.client import BackendClient
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import TAG, decode, encode
from shared_protocol.messages import (
    CancelRequest,
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    ImageInput,
    JobFailedEvent,
    ListJobsReply,
    ListJobsRequest,
    PingReply,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess
from tests.support.gltf_validator import error_messages, validate

pytestmark = pytest.mark.slow

QUICK = {"resolution": 48, "steps": 6}
LONG = {"resolution": 320, "steps": 320}  # seconds of real work, one slab per step


@pytest.fixture
def backend(tmp_path):
    with BackendProcess(tmp_path / "data", "--max-frame-mb", "1") as process:
        yield process


@pytest.fixture
def client(backend):
    with BackendClient(backend.address) as connection:
        yield connection


def submit(client: BackendClient, params=QUICK, prompt="a red torus", **kwargs) -> SubmitReply:
    reply = client.request(
        SubmitRequest(
            model="procedural",
            task="text",
            prompt=prompt,
            parameters=params,
            target_faces=2000,
            texture_size=256,
            **kwargs,
        ),
        timeout_s=10,
    )
    assert isinstance(reply, SubmitReply)
    return reply


def events_until_end(client: BackendClient, job_id: str, timeout_s: float = 120) -> list:
    events = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        if envelope is None or getattr(envelope.message, "job_id", None) != job_id:
            continue
        events.append(envelope.message)
        if isinstance(envelope.message, (ResultEvent, JobFailedEvent)):
            return events
    raise TimeoutError(f"job {job_id} did not end; got {[e.TYPE for e in events]}")


def first_progress(client: BackendClient, job_id: str, stage: str = "field") -> ProgressEvent:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        if (
            envelope
            and isinstance(envelope.message, ProgressEvent)
            and envelope.message.progress.stage == stage
        ):
            return envelope.message
    raise TimeoutError("no progress event")


def test_hello_lists_models_and_limits(client) -> None:
    reply = client.request(HelloRequest(client_name="test"))
    assert isinstance(reply, HelloReply)
    assert reply.protocol_version == 3
    procedural = next(m for m in reply.models if m.id == "procedural")
    assert procedural.tasks == ("text",) and procedural.weights_present
    assert {p.name for p in procedural.parameters} == {"resolution", "steps"}
    assert reply.max_frame_bytes == 2**20


def test_submit_progress_result(client, tmp_path) -> None:
    accepted = submit(client)
    assert accepted.queue_position >= 1
    events = events_until_end(client, accepted.job_id)
    progress = [e.progress for e in events if isinstance(e, ProgressEvent)]
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and len(fractions) >= QUICK["steps"]
    assert {"load", "field", "surface"} <= {p.stage for p in progress}
    result = events[-1]
    assert isinstance(result, ResultEvent), events[-1]
    glb = tmp_path / "result.glb"
    glb.write_bytes(result.asset)
    assert error_messages(validate(glb)) == []
    assert result.manifest.seed == accepted.seed
    assert abs(result.manifest.faces - 2000) <= 40
    assert result.manifest.bbox_min[1] == pytest.approx(0.0, abs=1e-4)  # origin at bottom
    status = client.request(StatusRequest(job_id=accepted.job_id))
    assert isinstance(status, StatusReply) and status.job.state == "succeeded"
    assert status.job.progress.fraction == 1.0


def test_cancel_takes_effect_within_a_step(client) -> None:
    accepted = submit(client, params=LONG)
    first = first_progress(client, accepted.job_id)
    client.send(CancelRequest(job_id=accepted.job_id))
    events = events_until_end(client, accepted.job_id, timeout_s=30)
    assert isinstance(events[-1], JobFailedEvent) and events[-1].state == "cancelled"
    steps_after = [e.progress.step for e in events if isinstance(e, ProgressEvent)]
    # The cancel and a step already under way may interleave; no more than that.
    assert len(steps_after) <= 3, steps_after
    assert max(steps_after, default=first.progress.step) < LONG["steps"]


def test_kill_9_mid_queue_then_restart_loses_nothing(tmp_path) -> None:
    backend = BackendProcess(tmp_path / "data").start()
    with BackendClient(backend.address) as client:
        running = submit(client, params=LONG).job_id
        queued = submit(client, params=QUICK, prompt="a blue cube").job_id
        first_progress(client, running)
    backend.kill()

    backend = BackendProcess(tmp_path / "data", port=backend.port).start()
    try:
        with BackendClient(backend.address) as client:
            for job_id in (running, queued):  # generous: CI machines can be heavily loaded
                client.request(StatusRequest(job_id=job_id, watch=True), timeout_s=60)
            # Speed the retried long job up: cancel is not what we test here, completion is.
            ends = {}
            deadline = time.monotonic() + 240
            while len(ends) < 2 and time.monotonic() < deadline:
                envelope = client.receive(timeout_s=0.5)
                if envelope and isinstance(envelope.message, (ResultEvent, JobFailedEvent)):
                    ends[envelope.message.job_id] = envelope.message
            assert set(ends) == {running, queued}
            assert all(isinstance(e, ResultEvent) for e in ends.values()), ends
            retried = client.request(StatusRequest(job_id=running), timeout_s=60)
            assert retried.job.attempts == 2
    finally:
        backend.stop()


def test_disconnect_reconnect_then_fetch(backend) -> None:
    with BackendClient(backend.address) as first:
        job_id = submit(first, params={"resolution": 160, "steps": 80}).job_id
        first_progress(first, job_id)
    with BackendClient(backend.address) as second:  # a new socket identity
        status = second.request(StatusRequest(job_id=job_id, watch=True))
        assert status.job.state in ("running", "succeeded")
        if status.job.state == "running":
            events = events_until_end(second, job_id)
            assert isinstance(events[-1], ResultEvent)
            pushed = events[-1].asset
        else:
            pushed = None
        fetched = second.request(FetchRequest(job_id=job_id), timeout_s=30)
        assert isinstance(fetched, FetchReply) and fetched.asset[:4] == b"glTF"
        assert pushed is None or pushed == fetched.asset
        listed = second.request(ListJobsRequest())
        assert isinstance(listed, ListJobsReply) and job_id in [j.job_id for j in listed.jobs]


def png_bytes(size=(32, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (255, 0, 0, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def raw_exchange(address: str, frames: list[bytes]) -> tuple[str, str | None, str | None]:
    """Send raw frames on a fresh DEALER; return (reply type, error code, error field)."""
    context = zmq.Context.instance()
    with context.socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        socket.send_multipart(frames)
        assert socket.poll(10_000), "no reply: the server must answer every message"
        envelope = decode(socket.recv_multipart())
    error = getattr(envelope.message, "error", None)
    return envelope.type, error and error.code, error and error.field


def submit_frames(**changes) -> list[bytes]:
    body = {"model": "procedural", "task": "text", "prompt": "a torus"}
    frames = encode(SubmitRequest(**{**body, **changes}), msg_id="m1")
    return frames


def header_frames(header: dict, *binary: bytes) -> list[bytes]:
    return [TAG, json.dumps(header).encode(), *binary]


MALFORMED = {
    "version": ([b"dreamcad/9", b"{}"], "protocol_version_mismatch", "tag"),
    "bad_json": ([TAG, b"{oops"], "bad_json", None),
    "unknown_type": (
        header_frames({"type": "format_disk", "msg_id": "x"}),
        "unknown_message_type",
        "type",
    ),
    "not_a_request": (encode(PingReply(server_time=1.0)), "unknown_message_type", "type"),
    "missing_field": (
        header_frames({"type": "submit_request", "msg_id": "x", "body": {"task": "text"}}),
        "missing_field",
        "body.model",
    ),
    "mistyped": (
        header_frames(
            {
                "type": "submit_request",
                "msg_id": "x",
                "body": {"model": "procedural", "task": "text", "seed": "x"},
            }
        ),
        "invalid_field",
        "body.seed",
    ),
    "out_of_range": (
        submit_frames(parameters={"resolution": 100000}),
        "out_of_range",
        "body.parameters.resolution",
    ),
    "unknown_parameter": (
        submit_frames(parameters={"colour": 1}),
        "invalid_parameter",
        "body.parameters.colour",
    ),
    "unknown_model": (submit_frames(model="nope"), "unknown_model", "body.model"),
    "unsupported_task": (
        encode(
            SubmitRequest(model="procedural", task="image", images=(ImageInput(data=png_bytes()),))
        ),
        "unsupported_task",
        "body.task",
    ),
    "undecodable_image": (
        encode(
            SubmitRequest(
                model="procedural",
                task="text",
                prompt="x",
                images=(ImageInput(data=b"not an image"),),
            )
        ),
        "invalid_image",
        "body.images[0].data",
    ),
    "oversize_frame": (
        encode(
            SubmitRequest(
                model="procedural",
                task="text",
                prompt="x",
                images=(ImageInput(data=bytes(2 * 2**20)),),
            )
        ),
        "frame_too_large",
        "body.images[0].data",
    ),
    "too_many_frames": (
        encode(
            SubmitRequest(
                model="procedural",
                task="multi_image",
                images=tuple(ImageInput(data=b"x") for _ in range(17)),
            )
        ),
        "too_many_frames",
        "frames",
    ),
    "texture_size": (submit_frames(texture_size=1000), "out_of_range", "body.texture_size"),
    "prompt_too_long": (submit_frames(prompt="x" * 5000), "prompt_too_long", "body.prompt"),
    "empty_prompt": (submit_frames(prompt="  "), "missing_field", "body.prompt"),
    "unknown_job": (encode(StatusRequest(job_id="nope")), "unknown_job", "body.job_id"),
    "fetch_unfinished": (encode(FetchRequest(job_id="nope")), "unknown_job", "body.job_id"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_input_gets_its_code_and_server_keeps_serving(backend, case) -> None:
    frames, code, field = MALFORMED[case]
    assert raw_exchange(backend.address, frames) == ("error_reply", code, field)
    with BackendClient(backend.address) as client:
        assert isinstance(client.request(PingRequest()), PingReply)


def test_error_reply_points_at_the_request(client) -> None:
    with pytest.raises(ProtocolError) as caught:
        client.request(SubmitRequest(model="nope", task="text", prompt="x"))
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    assert "procedural" in str(caught.value)  # lists what is installed


def raw_submit_frames(body_json: str, msg_id: str) -> list[bytes]:
    """A submit whose body is raw JSON text: values the codec can never produce itself."""
    header = f'{{"type":"submit_request","msg_id":"{msg_id}","parent_id":null,"body":{body_json}}}'
    return [TAG, header.encode()]


ODD_VALUES = {
    "lone_surrogate": ('"prompt":"a \\ud800 torus"', "invalid_field", "body.prompt"),
    "5000_digit_seed": ('"prompt":"x","seed":' + "7" * 5000, "out_of_range", "body.seed"),
    "deep_json": ('"prompt":"x","parameters":{"p":' + "[" * 100_000 + "]" * 100_000 + "}",
                  "bad_json", None),
    "long_name": ('"prompt":"x","name":"' + "n" * 5000 + '"', "out_of_range", "body.name"),
}


@pytest.mark.parametrize("case", list(ODD_VALUES))
def test_odd_values_get_a_code_keep_the_parent_id_and_leave_no_job(backend, case) -> None:
    fields, code, field = ODD_VALUES[case]
    body = '{"model":"procedural","task":"text",' + fields + "}"
    context = zmq.Context.instance()
    with context.socket(zmq.DEALER) as socket:
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(backend.address)
        socket.send_multipart(raw_submit_frames(body, msg_id=f"odd-{case}"))
        assert socket.poll(10_000), "no reply: the server must answer every message"
        envelope = decode(socket.recv_multipart())
    error = envelope.message.error
    assert (error.code, error.field) == (code, field), error
    assert envelope.parent_id == f"odd-{case}"
    assert error.hint and "bug" not in error.hint
    assert list((backend.data_dir / "jobs").iterdir()) == []  # nothing half-made on disk
