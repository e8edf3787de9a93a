"""Every message type round-trips through the wire format unchanged."""

from __future__ import annotations

import json

import pytest

from shared_protocol.framing import decode, encode
from shared_protocol.messages import EVENT_TYPES, MESSAGE_TYPES, REQUEST_TYPES
from tests.shared_protocol.samples import SAMPLES


def test_every_message_type_has_a_sample() -> None:
    assert {m.TYPE for m in SAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.TYPE)
def test_round_trip(message) -> None:
    frames = encode(message, msg_id="m1", parent_id="p0")
    envelope = decode(frames)
    assert envelope.message == message
    assert (envelope.msg_id, envelope.parent_id) == ("m1", "p0")


def test_bytes_travel_as_frames_not_in_json() -> None:
    submit = next(m for m in SAMPLES if m.TYPE == "submit_request")
    frames = encode(submit)
    header = json.loads(frames[1])
    assert header["body"]["images"][0]["data"] == {"$frame": 0}
    assert frames[2:] == [image.data for image in submit.images]
    assert b"PNG" not in frames[1]


def test_names_follow_the_convention() -> None:
    for name in MESSAGE_TYPES:
        assert name.endswith(("_request", "_reply", "_event")), name
    assert {"submit_request", "ping_request"} <= REQUEST_TYPES
    assert {"progress_event", "result_event"} <= EVENT_TYPES
