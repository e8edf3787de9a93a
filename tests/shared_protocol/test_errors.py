"""shared_protocol/errors.py: every code has a hint a person can act on, and docs list them all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared_protocol.errors import DEFAULT_HINTS, ErrorCode, ProtocolError
from shared_protocol.messages import MESSAGE_TYPES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_has_a_hint_that_names_no_protocol_message(code: ErrorCode) -> None:
    """Hints are read by people in the panel and the terminal: they name commands and buttons,
    not wire messages (``status_request``, ``hello_reply.models``)."""
    hint = DEFAULT_HINTS[code]
    assert ProtocolError(code, "x").hint == hint
    named = [name for name in MESSAGE_TYPES if name in hint]
    assert not named, f"{code}: {hint!r} names {named}"


def test_the_protocol_document_lists_every_code() -> None:
    table = (REPO / "docs" / "protocol.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", table.split("## Errors", 1)[1]))
    assert {code.value for code in ErrorCode} - documented == set()
