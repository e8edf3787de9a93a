"""A full disk: recognising it, measuring free space, and keeping a little room in reserve.

A full disk shows up as ``OSError`` (ENOSPC, EDQUOT) from file writes and as SQLite's "database
or disk is full" from the job store; ``is_disk_full`` recognises both anywhere in an exception's
chain, and ``disk_full_error`` turns them into the protocol's ``disk_full`` with a hint. The
``DiskReserve`` is a small file kept beside the job store: when the disk fills, releasing it
gives SQLite the room to record what happened (a job failed for lack of space, a job deleted to
make space), so the job store never gets stuck half-way; it is made again once space is back.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from pathlib import Path

from shared_protocol.errors import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLITE_FULL, and SQLITE_IOERR_SHMSIZE: opening a WAL database needs room for its shared-memory
# file, so on a full disk even reads fail with "disk I/O error" (spelled out: older Pythons lack
# the constants).
_SQLITE_FULL_CODES = frozenset({13, 4874})
RESERVE_BYTES = 1 << 20  # enough for hundreds of job-state updates and deletes


def is_disk_full(error: BaseException | None) -> bool:
    """True when ``error`` (or anything in its cause/context chain) is a full disk or quota."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, ProtocolError) and error.code is ErrorCode.DISK_FULL:
            return True
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            return True
        if isinstance(error, sqlite3.Error) and (
            getattr(error, "sqlite_errorcode", None) in _SQLITE_FULL_CODES
            or "database or disk is full" in str(error)
        ):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def free_mb(path: Path) -> float | None:
    """Free megabytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free / 2**20
    except OSError:
        return None


def disk_full_error(path: Path, what: str) -> ProtocolError:
    """The protocol's disk_full for ``what`` failing on the disk holding ``path``."""
    free = free_mb(path)
    shown = "unknown" if free is None else f"{free:.1f} MB"
    return ProtocolError(
        ErrorCode.DISK_FULL,
        f"{what}: the disk holding {path} is full ({shown} free)",
    )


def check_free_space(path: Path, min_free_mb: float, reserve: DiskReserve | None = None) -> None:
    """Refuse new work (DISK_FULL) when free space on ``path``'s disk is at or below the floor.

    A ``reserve`` that is not held (the disk was too full to make it) must fit first, so new
    jobs never eat the room kept for recording the ones already running.
    """
    free = free_mb(path)
    if free is None:
        return
    floor = min_free_mb
    owed = reserve is not None and not reserve.ensure()
    if owed:
        floor += reserve.size / 2**20
    if free <= floor:
        also = f" plus the {reserve.size // 1024} KiB kept for job records" if owed else ""
        raise ProtocolError(
            ErrorCode.DISK_FULL,
            f"the disk holding {path} has {free:.1f} MB free, at or below the backend's floor "
            f"of {min_free_mb:g} MB{also}: new jobs are refused until space is freed",
        )


class DiskReserve:
    """A file of ``size`` bytes that is given back to the filesystem when the disk fills."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = Path(path)
        self.size = size

    @property
    def held(self) -> bool:
        return self.path.is_file()

    def ensure(self) -> bool:
        """Make the reserve if it is missing and the disk has twice its size free; held?"""
        if self.held:
            return True
        free = free_mb(self.path.parent)
        if free is None or free * 2**20 < 2 * self.size:
            return False
        partial = self.path.with_suffix(".partial")
        try:
            with open(partial, "wb") as file:
                file.write(bytes(self.size))
                file.flush()
                os.fsync(file.fileno())
            partial.replace(self.path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            log.debug("disk reserve not made: %s", error)
            return False
        return True

    def release(self) -> bool:
        """Free the reserve's space; True if there was a reserve to free."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning(
            "the disk holding %s is full: released the %d KiB reserve to record job state",
            self.path.parent,
            self.size // 1024,
        )
        return True
