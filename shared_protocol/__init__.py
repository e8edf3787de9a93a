"""Dream CAD's wire protocol, shared by the Blender add-on and the backend.

Imported inside Blender's own Python, so it depends on the standard library and pyzmq alone
(pyzmq only in ``client``). ``messages`` defines what can be said, ``framing`` how it is put on
the wire, ``errors`` the stable error codes, ``limits`` the job options' defaults and ranges,
``client`` a non-blocking DEALER client. The written specification is docs/protocol.md.

The framing names below load on first use: importing ``shared_protocol.errors`` or ``.limits``
(all the geometry path needs) then does not create every message class (``framing`` imports
``messages``), which a timed ``dreamcad-backend postprocess`` process would pay for nothing.
"""

from __future__ import annotations

from typing import Any

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError

_FRAMING = (
    "DEFAULT_LIMITS", "PROTOCOL_VERSION", "DecodeError", "Envelope", "Limits", "decode", "encode",
    "split_identity",
)  # fmt: skip

__all__ = [
    "DEFAULT_LIMITS",
    "PROTOCOL_VERSION",
    "DecodeError",
    "Envelope",
    "ErrorCode",
    "ErrorInfo",
    "Limits",
    "ProtocolError",
    "decode",
    "encode",
    "split_identity",
]


def __getattr__(name: str) -> Any:
    if name in _FRAMING:
        from shared_protocol import framing

        return getattr(framing, name)
    raise AttributeError(f"module 'shared_protocol' has no attribute {name!r}")
