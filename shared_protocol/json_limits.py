"""What a header's JSON may hold beyond being JSON: nesting depth, real text, sane numbers.

Python's ``json`` accepts things the rest of the system cannot take: a lone UTF-16 surrogate
(``"\\ud800"``) is valid JSON but not valid text (SQLite, files and UTF-8 encoders refuse it);
an integer of thousands of digits exceeds Python's conversion limit; thousands of nested
brackets exhaust the recursion limit. ``load_header`` parses with those bounded and
``check_tree`` walks the result once, so each of them becomes a coded error that names the
field at fault instead of an exception from deep inside the backend.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared_protocol.errors import ErrorCode, ProtocolError

# 20 digits hold any 64-bit integer; no field of the protocol needs more.
MAX_INTEGER_DIGITS = 20
# The top-level msg_id, found in the raw text when the JSON as a whole cannot be parsed: only
# before the first nested value, where encode() always puts it.
_MSG_ID_BEFORE_NESTING = re.compile(r'^\s*\{[^{}\[\]]*?"msg_id"\s*:\s*"([A-Za-z0-9_.:-]{1,200})"')


class OversizedInteger:
    """Stands in for an integer literal too long to convert; ``check_tree`` reports it."""

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer of {len(self.digits.lstrip('-'))} digits>"


def _parse_int(text: str) -> int | OversizedInteger:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return OversizedInteger(text)
    return int(text)


def load_header(raw: bytes) -> Any:
    """Parse the header frame; any failure is BAD_JSON (never RecursionError or ValueError)."""
    try:
        return json.loads(bytes(raw).decode("utf-8"), parse_int=_parse_int)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError among them
        raise ProtocolError(ErrorCode.BAD_JSON, f"header is not valid JSON: {error}") from None
    except RecursionError:
        raise ProtocolError(
            ErrorCode.BAD_JSON,
            "header nests arrays or objects too deeply to parse",
            hint="Keep JSON nesting shallow; see the depth limit in docs/protocol.md.",
        ) from None


def salvage_msg_id(raw: bytes) -> str | None:
    """The msg_id of a header that could not be parsed, when it stands before any nesting."""
    match = _MSG_ID_BEFORE_NESTING.match(bytes(raw[:4096]).decode("utf-8", "replace"))
    return match.group(1) if match else None


def is_text(value: str) -> bool:
    """False for strings holding a lone surrogate (not encodable as UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_tree(value: Any, path: str, max_depth: int) -> None:
    """Raise a coded ProtocolError for the first value JSON allows but the protocol does not."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth >= max_depth:
            raise ProtocolError(
                ErrorCode.BAD_JSON,
                f"{where} nests deeper than {max_depth} levels",
                field=where,
                hint="Keep JSON nesting shallow; see the depth limit in docs/protocol.md.",
            )
        if isinstance(item, dict):
            for key, child in item.items():
                if not is_text(key):
                    raise _not_text(where)
                stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if not is_text(item):
                raise _not_text(where)
        elif isinstance(item, OversizedInteger):
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"{where} is an integer of {len(item.digits.lstrip('-'))} digits; "
                f"no field takes more than {MAX_INTEGER_DIGITS}",
                field=where,
            )


def _not_text(where: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.INVALID_FIELD,
        f"{where} holds a lone UTF-16 surrogate, which is not valid text",
        field=where,
        hint="Send text as valid UTF-8 (pair every surrogate, or drop it).",
    )
