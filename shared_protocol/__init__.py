"""Dream CAD's wire protocol, shared by the Blender add-on and the backend.

Imported inside Blender's own Python, so it depends on the standard library and pyzmq alone
(pyzmq only in ``client``). ``messages`` defines what can be said, ``framing`` how it is put on
the wire, ``errors`` the stable error codes, ``client`` a non-blocking DEALER client. The
written specification is docs/protocol.md.
"""

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.framing import (
    DEFAULT_LIMITS,
    PROTOCOL_VERSION,
    DecodeError,
    Envelope,
    Limits,
    decode,
    encode,
    split_identity,
)

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
