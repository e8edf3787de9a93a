"""client/session.py: a result's extra file fetched in slices until whole (ExtraFileReady).

The peer is a tiny ROUTER on a real socket: the real backend cannot make a Gaussian splat file
from Blender's environment (the model needs torch); the backend side of the slicing is tested
against the real handler in tests/backend/jobs/test_result_files.py. The peer announces small
frames, so the file must come in several slices, each asked from where the last one ended."""

from __future__ import annotations

import time

import numpy as np

from shared_protocol.framing import PROTOCOL_VERSION, decode, encode
from shared_protocol.messages import (
    ErrorReply,
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    ListJobsReply,
    ListJobsRequest,
    Manifest,
    PingReply,
)
from tests.blender_addon.client.test_session import poll_until

FILE = np.random.default_rng(5).bytes(5000)
MANIFEST = Manifest(format="glb", faces=1, vertices=3, bbox_min=(0, 0, 0), bbox_max=(1, 1, 1),
                    seed=1, model="trellis-image-large")  # fmt: skip


def notes_until(session, kind: str, timeout_s: float = 20.0) -> list:
    notes: list = []
    deadline = time.monotonic() + timeout_s
    while not any(type(note).__name__ == kind for note in notes):
        assert time.monotonic() < deadline, f"no {kind}: {notes}"
        notes += session.poll(wait_s=0.05)
    return notes


def other_reply(message):
    """What a session asks by itself once connected: the job list, pings."""
    return ListJobsReply(jobs=()) if isinstance(message, ListJobsRequest) else PingReply(0.0)


def test_an_extra_file_arrives_whole_in_slices(addon, peer_factory) -> None:
    asked: list[FetchRequest] = []

    def reply(frames):
        request = decode(frames)
        message = request.message
        if isinstance(message, HelloRequest):
            answer = HelloReply(backend_version="t", protocol_version=PROTOCOL_VERSION, gpus=(),
                                models=(), max_frame_bytes=2048, max_frames=4,
                                max_prompt_chars=10)  # fmt: skip
        elif isinstance(message, FetchRequest):
            asked.append(message)
            end = message.offset + (message.max_bytes or len(FILE))
            answer = FetchReply(job_id=message.job_id, manifest=MANIFEST,
                                asset=FILE[message.offset:end], file=message.file,
                                offset=message.offset, total_bytes=len(FILE))  # fmt: skip
        else:
            answer = other_reply(message)
        return encode(answer, parent_id=request.msg_id)

    peer = peer_factory(reply)
    client = addon.client
    session = client.Session(peer.address)
    session.connect()
    poll_until(session, lambda: session.connected)
    session.fetch_file("job1", "gaussians.ply")
    notes = notes_until(session, "ExtraFileReady")
    ready = next(n for n in notes if type(n).__name__ == "ExtraFileReady")
    assert (ready.job_id, ready.name, ready.data) == ("job1", "gaussians.ply", FILE)
    assert len(asked) == 5 and all(0 < a.max_bytes <= 1024 for a in asked)  # half a frame
    assert [a.offset for a in asked] == [i * 1024 for i in range(5)]
    assert session.connected
    session.close()


def test_a_refused_file_fetch_is_a_request_failure(addon, peer_factory) -> None:
    from shared_protocol.errors import ErrorCode, ProtocolError

    def reply(frames):
        request = decode(frames)
        if isinstance(request.message, HelloRequest):
            answer = HelloReply(backend_version="t", protocol_version=PROTOCOL_VERSION, gpus=(),
                                models=(), max_frame_bytes=2048, max_frames=4,
                                max_prompt_chars=10)  # fmt: skip
        elif isinstance(request.message, FetchRequest):
            error = ProtocolError(ErrorCode.INVALID_FIELD, "no such file", field="body.file")
            answer = ErrorReply(error=error.info)
        else:
            answer = other_reply(request.message)
        return encode(answer, parent_id=request.msg_id)

    session = addon.client.Session(peer_factory(reply).address)
    session.connect()
    poll_until(session, lambda: session.connected)
    session.fetch_file("job1", "gaussians.ply")
    notes = notes_until(session, "RequestFailed")
    failure = next(n for n in notes if type(n).__name__ == "RequestFailed")
    assert failure.action == "fetch_file" and failure.error.field == "body.file"
    assert session._file_parts == {}
    session.close()
