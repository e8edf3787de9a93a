"""Protocol version mismatches: reading the backend's version and saying which side to upgrade.

A backend that could read our tag but not our version refuses in words ("this side speaks N");
a message of theirs we cannot read carries its version as DecodeError.peer_version. Either way
the panel should tell the user which of the two programs is older (no bpy).
"""

from __future__ import annotations

import re

from shared_protocol.framing import PROTOCOL_VERSION

_THEIR_SIDE_VERSION = re.compile(r"this side speaks (\d+)")


def version_in_refusal(message: str) -> int | None:
    """The backend's protocol version from its version-mismatch error message, if it says."""
    match = _THEIR_SIDE_VERSION.search(message)
    return int(match.group(1)) if match else None


def incompatibility_hint(remote: int | None) -> str:
    """Say which side to upgrade, given the backend's protocol version when it is known."""
    if remote is None:
        return (
            "Upgrade the older of the two so both speak the same protocol: the Dream CAD "
            "add-on (Edit > Preferences > Get Extensions) or the backend (scripts/setup_env.sh)."
        )
    if remote > PROTOCOL_VERSION:
        return (
            f"The backend is newer (protocol {remote}; this add-on speaks {PROTOCOL_VERSION}): "
            "upgrade the Dream CAD add-on."
        )
    return (
        f"The backend is older (protocol {remote}; this add-on speaks {PROTOCOL_VERSION}): "
        "upgrade the backend (rerun scripts/setup_env.sh or pip install -U dreamcad)."
    )
