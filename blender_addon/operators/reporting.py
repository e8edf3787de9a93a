"""How operators turn a structured error into a report the user reads (and the panel shows)."""

from __future__ import annotations

import bpy

from shared_protocol.errors import ErrorInfo, ProtocolError

from .. import runtime


def report_error(operator: bpy.types.Operator, error: ProtocolError | ErrorInfo) -> set[str]:
    """Report ``error`` (message and fix) and return the operator's CANCELLED result."""
    info = error.info if isinstance(error, ProtocolError) else error
    text = info.message + (f" ({info.field})" if info.field else "")
    runtime.set_report("ERROR", text, info.hint or "")
    operator.report({"ERROR"}, f"{text}. {info.hint}" if info.hint else text)
    return {"CANCELLED"}
