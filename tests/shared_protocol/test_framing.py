"""Malformed messages get the right stable code and field; the parser never raises anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_protocol.errors import ErrorCode
from shared_protocol.framing import TAG, DecodeError, Limits, decode, encode, split_identity
from shared_protocol.messages import ImageInput, PingRequest, SubmitRequest


def submit_frames(**body_changes) -> list[bytes]:
    frames = encode(SubmitRequest(model="procedural", task="text", prompt="a torus"), msg_id="m1")
    header = json.loads(frames[1])
    header["body"].update(body_changes)
    return [frames[0], json.dumps(header).encode(), *frames[2:]]


def code_of(frames, limits: Limits | None = None) -> tuple[str, str | None]:
    with pytest.raises(DecodeError) as caught:
        decode(frames, limits or Limits())
    return caught.value.code.value, caught.value.field


@pytest.mark.parametrize(
    ("frames", "code", "field"),
    [
        ([TAG], "malformed_frames", None),
        ([b"http/1.1", b"{}"], "malformed_frames", "tag"),
        ([b"dreamcad/1", b"{}"], "protocol_version_mismatch", "tag"),
        ([b"dreamcad/4", b"{}"], "protocol_version_mismatch", "tag"),
        ([TAG, b"{not json"], "bad_json", None),
        ([TAG, b"\xff\xfe"], "bad_json", None),
        ([TAG, b"[1, 2]"], "bad_json", None),
        ([TAG, b'{"msg_id": "m"}'], "missing_field", "type"),
        ([TAG, b'{"type": 5, "msg_id": "m"}'], "invalid_field", "type"),
        ([TAG, b'{"type": "launch_rocket", "msg_id": "m"}'], "unknown_message_type", "type"),
        (submit_frames(seed="seven"), "invalid_field", "body.seed"),
        (submit_frames(seed=True), "invalid_field", "body.seed"),
        (submit_frames(target_faces=10), "out_of_range", "body.target_faces"),
        (submit_frames(texture_size=10**9), "out_of_range", "body.texture_size"),
        (submit_frames(task="video"), "invalid_field", "body.task"),
        (submit_frames(pbr="yes"), "invalid_field", "body.pbr"),
        (submit_frames(colour="red"), "invalid_field", "body.colour"),
        (
            submit_frames(images=[{"data": {"$frame": 3}}]),
            "malformed_frames",
            "body.images[0].data",
        ),
        (submit_frames(images=[{"data": "base64..."}]), "invalid_field", "body.images[0].data"),
        (submit_frames(prompt="x" * 2001), "prompt_too_long", "body.prompt"),
    ],
)
def test_malformed_message_codes(frames, code, field) -> None:
    assert code_of(frames) == (code, field)


def test_missing_required_field() -> None:
    frames = submit_frames()
    header = json.loads(frames[1])
    del header["body"]["model"]
    assert code_of([TAG, json.dumps(header).encode()]) == ("missing_field", "body.model")


def test_peer_version_is_reported_on_mismatch() -> None:
    with pytest.raises(DecodeError) as caught:
        decode([b"dreamcad/7", b"{}"])
    assert caught.value.code is ErrorCode.PROTOCOL_VERSION_MISMATCH
    assert caught.value.peer_version == 7


def test_msg_id_is_kept_for_the_error_reply() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(submit_frames(seed="x"))
    assert caught.value.msg_id == "m1"


def test_frame_limits() -> None:
    image = ImageInput(data=bytes(2048))
    frames = encode(SubmitRequest(model="m", task="image", images=(image,)))
    assert code_of(frames, Limits(max_frame_bytes=1024)) == (
        "frame_too_large",
        "body.images[0].data",
    )
    many = encode(SubmitRequest(model="m", task="multi_image", images=(image,) * 5))
    assert code_of(many, Limits(max_frames=4)) == ("too_many_frames", "frames")
    assert code_of([*frames, b"stray"]) == ("malformed_frames", "frames")
    assert code_of([TAG, b" " * 100], Limits(max_header_bytes=50)) == ("frame_too_large", "header")


def test_split_identity() -> None:
    identity, payload = split_identity([b"id", *encode(PingRequest())])
    assert identity == b"id" and decode(payload).type == "ping_request"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_random_frames_never_crash(frames) -> None:
    try:
        decode(frames)
    except DecodeError as error:
        assert isinstance(error.code, ErrorCode)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["submit_request", "status_request", "hello_reply", "progress_event"]),
    st.dictionaries(
        st.sampled_from(
            [
                "model",
                "task",
                "prompt",
                "seed",
                "job_id",
                "images",
                "progress",
                "watch",
                "parameters",
                "gpus",
            ]
        ),
        json_values,
        max_size=6,
    ),
)
def test_random_bodies_decode_or_fail_with_a_code(message_type, body) -> None:
    header = {"type": message_type, "msg_id": "m", "body": body}
    try:
        decode([TAG, json.dumps(header).encode()])
    except DecodeError as error:
        assert error.code in ErrorCode and error.msg_id == "m"


def raw_submit(body_json: str, msg_id: str = "m1") -> list[bytes]:
    """A submit whose body is given as raw JSON text (values Python's json cannot write)."""
    header = f'{{"type":"submit_request","msg_id":"{msg_id}","parent_id":null,"body":{body_json}}}'
    return [TAG, header.encode()]


def decode_error(frames, limits: Limits | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as caught:
        decode(frames, limits or Limits())
    return caught.value


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        # A lone surrogate is valid JSON but no valid text: SQLite, files and UTF-8 refuse it.
        ('{"model":"procedural","task":"text","prompt":"a \\ud800 torus"}', "invalid_field",
         "body.prompt"),
        ('{"model":"procedural","task":"text","prompt":"x","parameters":{"\\udc00":1}}',
         "invalid_field", "body.parameters"),
        ('{"model":"procedural","task":"text","prompt":"x","parameters":{"p":["\\ud83d"]}}',
         "invalid_field", "body.parameters.p[0]"),
        # More digits than Python converts by default (4300): must be a range error, not a crash.
        ('{"model":"procedural","task":"text","prompt":"x","seed":' + "9" * 5000 + "}",
         "out_of_range", "body.seed"),
        ('{"model":"procedural","task":"text","prompt":"x","seed":-' + "9" * 25 + "}",
         "out_of_range", "body.seed"),
        ('{"model":"procedural","task":"text","prompt":"x","parameters":{"n":' + "1" * 30 + "}}",
         "out_of_range", "body.parameters.n"),
        ('{"model":"procedural","task":"text","prompt":"x","seed":' + str(2**32) + "}",
         "out_of_range", "body.seed"),
        ('{"model":"procedural","task":"text","prompt":"x","name":"' + "n" * 201 + '"}',
         "out_of_range", "body.name"),
    ],
)
def test_malformed_values_get_their_code_and_keep_the_msg_id(body, code, field) -> None:
    error = decode_error(raw_submit(body))
    assert (error.code.value, error.field, error.msg_id) == (code, field, "m1")


def test_a_seed_at_the_documented_bounds_decodes() -> None:
    for seed in (0, 2**32 - 1):
        frames = raw_submit(f'{{"model":"m","task":"text","prompt":"x","seed":{seed}}}')
        assert decode(frames).message.seed == seed


def test_a_name_of_200_characters_decodes() -> None:
    frames = raw_submit('{"model":"m","task":"text","prompt":"x","name":"' + "n" * 200 + '"}')
    assert len(decode(frames).message.name) == 200


@pytest.mark.parametrize("depth", [40, 5000, 200_000])
def test_deeply_nested_json_is_bad_json_and_keeps_the_msg_id(depth) -> None:
    nested = "[" * depth + "]" * depth
    error = decode_error(raw_submit(f'{{"model":"m","task":"text","parameters":{{"p":{nested}}}}}'))
    assert error.code is ErrorCode.BAD_JSON and error.msg_id == "m1"
    assert "nest" in str(error)


def test_nesting_within_the_limit_decodes() -> None:
    nested = "[" * 20 + "]" * 20
    frames = raw_submit(f'{{"model":"m","task":"text","parameters":{{"p":{nested}}}}}')
    assert decode(frames, Limits(max_json_depth=32)).message.parameters["p"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_in_float_fields(literal) -> None:
    header = (
        '{"type":"progress_event","msg_id":"m2","body":{"job_id":"j","progress":'
        f'{{"stage":"s","fraction":0.5,"eta_s":{literal}}}}}}}'
    )
    error = decode_error([TAG, header.encode()])
    assert (error.code, error.field, error.msg_id) == (
        ErrorCode.INVALID_FIELD, "body.progress.eta_s", "m2"
    )


def test_a_lone_surrogate_in_the_msg_id_is_not_echoed() -> None:
    header = '{"type":"ping_request","msg_id":"\\ud800","body":{}}'
    error = decode_error([TAG, header.encode()])
    assert error.code is ErrorCode.INVALID_FIELD and error.msg_id is None
