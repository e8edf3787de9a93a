"""The one owner of the wire format: build, frame, parse and check multipart messages.

A message is ``[tag, header, *binary]``: ``tag`` is ``b"dreamcad/<version>"``; ``header`` is one
UTF-8 JSON object ``{"type", "msg_id", "parent_id", "sent_at", "body"}``; the binary frames hold
what the body's ``{"$frame": i}`` references point at. A ROUTER socket adds the peer identity in
front; ``split_identity`` takes it off. Limits that an operator may change (frame size, frame
count, prompt length) are a :class:`Limits` passed to ``decode``. See docs/protocol.md.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared_protocol.codec import FRAME_KEY, from_wire, to_wire
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.json_limits import check_tree, is_text, load_header, salvage_msg_id
from shared_protocol.messages import MESSAGE_TYPES, Message

PROTOCOL_NAME = "dreamcad"
PROTOCOL_VERSION = 3  # 2: instance ids, worker health, request_key, forbidden; 3: see docs
TAG = f"{PROTOCOL_NAME}/{PROTOCOL_VERSION}".encode()


@dataclass(frozen=True)
class Limits:
    """Size limits checked on every decode; the backend advertises its own in hello_reply."""

    max_frame_bytes: int = 64 * 1024 * 1024
    max_frames: int = 16
    max_header_bytes: int = 1024 * 1024
    max_prompt_chars: int = 2000
    max_json_depth: int = 32  # levels of arrays/objects in a header, the header itself included


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Envelope:
    """A decoded message with its header fields."""

    message: Message
    msg_id: str
    parent_id: str | None
    sent_at: float

    @property
    def type(self) -> str:
        return self.message.TYPE


class DecodeError(ProtocolError):
    """A message that could not be decoded.

    ``msg_id`` is kept when the header was readable; ``peer_version`` is the protocol version
    the sender's tag named (None if the tag was unreadable), so a client can say which side to
    upgrade without parsing the message text.
    """

    def __init__(
        self, error: ProtocolError, msg_id: str | None, peer_version: int | None = None
    ) -> None:
        super().__init__(error.code, str(error), field=error.field, hint=error.hint)
        self.msg_id = msg_id
        self.peer_version = peer_version


def new_msg_id() -> str:
    return uuid.uuid4().hex


def encode(
    message: Message, *, msg_id: str | None = None, parent_id: str | None = None
) -> list[bytes]:
    """Frame ``message``: ``[tag, header JSON, *binary frames]``."""
    frames: list[bytes] = []
    body = to_wire(message, frames)
    header = {
        "type": message.TYPE,
        "msg_id": msg_id or new_msg_id(),
        "parent_id": parent_id,
        "sent_at": time.time(),
        "body": body,
    }
    return [TAG, json.dumps(header, separators=(",", ":")).encode(), *frames]


def split_identity(frames: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """Split what a ROUTER socket received into (peer identity, message frames)."""
    if len(frames) < 2:
        raise ProtocolError(ErrorCode.MALFORMED_FRAMES, "message has no frames after the identity")
    return bytes(frames[0]), [bytes(f) for f in frames[1:]]


def decode(frames: Sequence[bytes], limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """Parse and check one message; raise DecodeError with a stable code on any fault."""
    msg_id: str | None = None
    try:
        _check_tag(frames)
        header = _parse_header(frames[1], limits)
        msg_id = _msg_id_of(header)
        check_tree(header, "", limits.max_json_depth)
        _check_header_fields(header)
        return _decode_header(header, list(frames[2:]), limits)
    except ProtocolError as error:
        if msg_id is None and error.code is ErrorCode.BAD_JSON and len(frames) > 1:
            msg_id = salvage_msg_id(frames[1])
        raise DecodeError(error, msg_id, tag_version(frames)) from None


def _msg_id_of(header: dict[str, Any]) -> str | None:
    """The header's msg_id when it can be echoed back as a parent_id."""
    msg_id = header.get("msg_id")
    return msg_id if isinstance(msg_id, str) and is_text(msg_id) else None


def tag_version(frames: Sequence[bytes]) -> int | None:
    """The version a message's tag names, or None when the tag is not ours."""
    if not frames:
        return None
    name, _, version = bytes(frames[0]).partition(b"/")
    return int(version) if name == PROTOCOL_NAME.encode() and version.isdigit() else None


def _check_tag(frames: Sequence[bytes]) -> None:
    if len(frames) < 2:
        raise ProtocolError(
            ErrorCode.MALFORMED_FRAMES,
            f"a message needs at least 2 frames (tag, header); got {len(frames)}",
        )
    tag = bytes(frames[0])
    name, _, version = tag.partition(b"/")
    if name != PROTOCOL_NAME.encode() or not version.isdigit():
        raise ProtocolError(
            ErrorCode.MALFORMED_FRAMES,
            f"first frame must be the protocol tag {TAG!r}, got {tag[:40]!r}",
            field="tag",
        )
    if int(version) != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.PROTOCOL_VERSION_MISMATCH,
            f"message speaks protocol {int(version)}; this side speaks {PROTOCOL_VERSION}",
            field="tag",
        )


def _parse_header(raw: bytes, limits: Limits) -> dict[str, Any]:
    if len(raw) > limits.max_header_bytes:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"header is {len(raw)} bytes; the limit is {limits.max_header_bytes}",
            field="header",
            hint="Send large data as binary frames, not inside the JSON header.",
        )
    header = load_header(raw)
    if not isinstance(header, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, "header must be a JSON object")
    return header


def _check_header_fields(header: dict[str, Any]) -> None:
    for key, kind in (("type", str), ("msg_id", str)):
        if key not in header:
            raise ProtocolError(ErrorCode.MISSING_FIELD, f"header.{key} is required", field=key)
        if not isinstance(header[key], kind):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"header.{key} must be a string", field=key
            )


def _decode_header(header: dict[str, Any], binary: list[bytes], limits: Limits) -> Envelope:
    message_type = header["type"]
    cls = MESSAGE_TYPES.get(message_type)
    if cls is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_MESSAGE_TYPE,
            f"unknown message type {message_type[:60]!r}",
            field="type",
        )
    parent_id = header.get("parent_id")
    if parent_id is not None and not isinstance(parent_id, str):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, "parent_id must be a string", field="parent_id"
        )
    sent_at = header.get("sent_at", 0.0)
    if isinstance(sent_at, bool) or not isinstance(sent_at, (int, float)):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "sent_at must be a number", field="sent_at")
    body = header.get("body", {})
    _check_frames(body, binary, limits)
    used: set[int] = set()
    message = from_wire(cls, body, binary, "body", used)
    if len(used) != len(binary):
        unused = sorted(set(range(len(binary))) - used)
        raise ProtocolError(
            ErrorCode.MALFORMED_FRAMES,
            f"binary frames {unused} are not referenced by the body",
            field="frames",
        )
    prompt = getattr(message, "prompt", None)
    if isinstance(prompt, str) and len(prompt) > limits.max_prompt_chars:
        raise ProtocolError(
            ErrorCode.PROMPT_TOO_LONG,
            f"prompt has {len(prompt)} characters; the limit is {limits.max_prompt_chars}",
            field="body.prompt",
        )
    return Envelope(message, header["msg_id"], parent_id, float(sent_at))


def _check_frames(body: Any, binary: list[bytes], limits: Limits) -> None:
    if len(binary) > limits.max_frames:
        raise ProtocolError(
            ErrorCode.TOO_MANY_FRAMES,
            f"message has {len(binary)} binary frames; the limit is {limits.max_frames}",
            field="frames",
        )
    paths = dict(_frame_paths(body, "body"))
    for index, frame in enumerate(binary):
        if len(frame) > limits.max_frame_bytes:
            path = paths.get(index, f"frames[{index}]")
            raise ProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"{path} is {len(frame) / 2**20:.1f} MiB; "
                f"the limit is {limits.max_frame_bytes / 2**20:.1f} MiB",
                field=path,
            )


def _frame_paths(value: Any, path: str) -> list[tuple[Any, str]]:
    """(frame index, field path) for each frame reference in a JSON body."""
    if isinstance(value, dict):
        if set(value) == {FRAME_KEY}:
            return [(value[FRAME_KEY], path)]
        return [p for key, item in value.items() for p in _frame_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _frame_paths(item, f"{path}[{i}]")]
    return []
