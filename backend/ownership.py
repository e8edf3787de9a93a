"""Who is asking, and which jobs they may see and change.

A job belongs to the client that submitted it. With CURVE on, a client is its public key (the
authenticator puts its Z85 form in every message's ``User-Id`` property); keys named as operator
keys (``serve --operator-key FILE``) see and change every job. Without CURVE the backend only
serves loopback, where every client is the one local user: all share the owner ``local`` and,
as before ownership existed, see every job. Another owner's job answers ``forbidden``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from backend.jobs.store import LOCAL_OWNER, JobRecord
from shared_protocol.errors import ErrorCode, ProtocolError


@dataclass(frozen=True)
class Caller:
    """The client behind one request: the owner its jobs get, and whether it sees all jobs."""

    owner: str
    operator: bool

    def may_access(self, record: JobRecord) -> bool:
        return self.operator or record.owner == self.owner

    def require_access(self, record: JobRecord) -> JobRecord:
        if not self.may_access(record):
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"job {record.job_id} belongs to another client",
                field="body.job_id",
            )
        return record


LOCAL_USER = Caller(owner=LOCAL_OWNER, operator=True)


def caller_of(frame: zmq.Frame, curve: bool, operator_keys: frozenset[str]) -> Caller:
    """The caller of a message received on a ROUTER (any frame of it carries the property)."""
    if not curve:
        return LOCAL_USER
    user_id = frame.get("User-Id")
    return Caller(owner=user_id, operator=user_id in operator_keys)


def load_operator_keys(paths: tuple[Path, ...]) -> frozenset[str]:
    """Z85 public keys from certificate files made by ``dreamcad-backend keys`` (``*.key``)."""
    keys = set()
    for path in paths:
        public, _secret = zmq.auth.load_certificate(path)
        keys.add(public.decode("ascii"))
    return frozenset(keys)
