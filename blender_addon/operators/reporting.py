"""How operators turn a structured error into a report the user reads (and the panel shows)."""

from __future__ import annotations

import bpy

from shared_protocol.errors import ErrorInfo, ProtocolError

from ..client.records import describe_error
from ..live_state import set_report


def report_error(operator: bpy.types.Operator, error: ProtocolError | ErrorInfo) -> set[str]:
    """Report ``error`` (message and fix) and return the operator's CANCELLED result."""
    text, hint = describe_error(error.info if isinstance(error, ProtocolError) else error)
    set_report("ERROR", text, hint)
    operator.report({"ERROR"}, f"{text}. {hint}" if hint else text)
    return {"CANCELLED"}
