"""Download jobs: stored in SQLite, run one at a time on their own thread, resumed after a restart.

A ``download_request`` becomes a row (``queued``); the manager's thread plans it (which files,
how big), fetches it (transfer.py) and records its progress and its end. A download that was
running when the backend stopped is queued again at the next start and resumes from its partial
files, so a restart loses nothing but the seconds it took. Progress and the end are published
as ``download_progress_event`` / ``download_finished_event`` keyed by the download id (the
server forwards them to the clients that asked or watch). A second request for a model that is
already downloading gets that download. Cancelling keeps the partial files for the next attempt.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from backend.cancellation import Cancelled, CancelToken
from backend.disk_space import is_disk_full
from backend.download import cache_dir
from backend.downloads.transfer import Transfer, plan
from backend.models.registry import ModelRegistry
from shared_protocol.codec import from_wire
from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import (
    DownloadFinishedEvent,
    DownloadInfo,
    DownloadProgress,
    DownloadProgressEvent,
    Message,
)

log = logging.getLogger(__name__)

LIVE_STATES = ("queued", "running")
SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    download_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    components TEXT NOT NULL,
    only_components INTEGER NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    progress TEXT,
    error TEXT
)
"""


class DownloadManager:
    def __init__(
        self,
        db_path: Path,
        registry: ModelRegistry,
        publish: Callable[[str, Message], None],
        progress_interval_s: float = 0.25,
    ) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._registry = registry
        self._publish = publish
        self._interval_s = progress_interval_s
        self._tokens: dict[str, CancelToken] = {}
        self._thread = threading.Thread(target=self._loop, name="downloads", daemon=True)

    # --- the server thread's side ---------------------------------------------------------

    def start(self) -> None:
        """Queue again what a stop interrupted (it resumes), then start fetching."""
        with self._lock:
            self._db.execute("UPDATE downloads SET state='queued' WHERE state='running'")
        self._thread.start()
        self._wake.set()

    def request(
        self, model: str, components: tuple[str, ...] = (), only_components: bool = False
    ) -> DownloadInfo:
        """A new queued download, or the live one of the same model (checked before queueing)."""
        from backend.downloads.transfer import sources_of

        cls = self._registry.adapter_class(model)
        sources_of(cls, components, only_components)  # unknown component or no weights: now
        if (live := self.live_for(model)) is not None:
            return live
        info = DownloadInfo(
            download_id=uuid.uuid4().hex[:16],
            model=model,
            components=tuple(components),
            state="queued",
            created_at=time.time(),
        )
        with self._lock:
            self._db.execute(
                "INSERT INTO downloads (download_id, model, components, only_components, state,"
                " created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                (info.download_id, model, json.dumps(list(components)), int(only_components),
                 info.created_at),
            )  # fmt: skip
        self._wake.set()
        return info

    def cancel(self, download_id: str) -> str:
        with self._lock:  # taken from the queue atomically, so the thread cannot start it now
            taken = self._db.execute(
                "UPDATE downloads SET state='cancelled' WHERE download_id=? AND state='queued'",
                (download_id,),
            ).rowcount
        if taken:
            self._finish(download_id, "cancelled", _cancelled_error())
        elif self.require(download_id).state == "running" and (
            token := self._tokens.get(download_id)
        ):
            token.cancel()  # the fetch loop stops at its next block
            return "running"
        return self.require(download_id).state

    def require(self, download_id: str) -> DownloadInfo:
        info = self.get(download_id)
        if info is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_DOWNLOAD, f"no download {download_id!r}",
                field="body.download_id",
            )  # fmt: skip
        return info

    def get(self, download_id: str) -> DownloadInfo | None:
        rows = self._rows("WHERE download_id=?", (download_id,))
        return rows[0] if rows else None

    def list(self, limit: int = 100) -> tuple[DownloadInfo, ...]:
        return tuple(self._rows("ORDER BY created_at DESC LIMIT ?", (limit,)))

    def live_for(self, model: str) -> DownloadInfo | None:
        rows = self._rows("WHERE model=? AND state IN ('queued','running')", (model,))
        return rows[0] if rows else None

    def last_of(self, model: str) -> DownloadInfo | None:
        rows = self._rows("WHERE model=? ORDER BY created_at DESC LIMIT 1", (model,))
        return rows[0] if rows else None

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop the running download (it stays ``running``, so the next start resumes it)."""
        self._stop.set()
        for token in list(self._tokens.values()):
            token.cancel()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        with self._lock:
            self._db.close()

    # --- the download thread --------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while not self._stop.is_set() and (row := self._next_queued()) is not None:
                self._run(*row)

    def _next_queued(self) -> tuple[DownloadInfo, bool] | None:
        with self._lock:
            found = self._db.execute(
                "SELECT download_id, only_components FROM downloads WHERE state='queued' "
                "ORDER BY created_at LIMIT 1"
            ).fetchone()
            if found is None:
                return None
            self._db.execute(
                "UPDATE downloads SET state='running' WHERE download_id=?", (found[0],)
            )
            self._tokens[found[0]] = CancelToken()  # before anyone can see it running
        return self.require(found[0]), bool(found[1])

    def _run(self, info: DownloadInfo, only_components: bool) -> None:
        token = self._tokens[info.download_id]
        log.info("download %s: %s %s", info.download_id, info.model, ",".join(info.components))
        try:
            cls = self._registry.adapter_class(info.model)
            files = plan(cls, info.components, only_components)
            Transfer(files, lambda p: self._progress(info, p), token, self._interval_s).run()
        except Exception as error:
            self._tokens.pop(info.download_id, None)
            if isinstance(error, Cancelled) and self._stop.is_set():
                log.info("download %s: paused by the shutdown; resumes at start", info.download_id)
                return  # left running: ``start`` queues it again
            self._finish(info.download_id, *_outcome(error))
            return
        self._tokens.pop(info.download_id, None)
        self._finish(info.download_id, "succeeded", None)

    def _progress(self, info: DownloadInfo, progress: DownloadProgress) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE downloads SET progress=? WHERE download_id=?",
                (json.dumps(asdict(progress)), info.download_id),
            )
        self._publish(
            info.download_id, DownloadProgressEvent(info.download_id, info.model, progress)
        )

    def _finish(self, download_id: str, state: str, error: ErrorInfo | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE downloads SET state=?, finished_at=?, error=? WHERE download_id=?",
                (state, time.time(), json.dumps(asdict(error)) if error else None, download_id),
            )
        info = self.require(download_id)
        log.info("download %s %s%s", download_id, state, f": {error.describe()}" if error else "")
        self._publish(download_id, DownloadFinishedEvent(info))

    def _rows(self, where: str, args: tuple) -> list[DownloadInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT download_id, model, components, state, created_at, finished_at, progress,"
                f" error FROM downloads {where}",
                args,
            ).fetchall()
        return [_info(row) for row in rows]


def _info(row: tuple) -> DownloadInfo:
    download_id, model, components, state, created_at, finished_at, progress, error = row
    info = DownloadInfo(
        download_id=download_id,
        model=model,
        components=tuple(json.loads(components)),
        state=state,
        created_at=created_at,
        finished_at=finished_at,
    )
    if progress:
        info = replace(info, progress=from_wire(DownloadProgress, json.loads(progress), [],
                                                "progress", set()))  # fmt: skip
    if error:
        info = replace(info, error=ErrorInfo(**json.loads(error)))
    return info


def _cancelled_error() -> ErrorInfo:
    return ProtocolError(
        ErrorCode.CANCELLED, "download cancelled on request",
        hint="Download again to resume: the files fetched so far are kept.",
    ).info  # fmt: skip


def _outcome(error: Exception) -> tuple[str, ErrorInfo]:
    if isinstance(error, Cancelled):
        return "cancelled", _cancelled_error()
    if isinstance(error, ProtocolError):
        return "failed", error.info
    if is_disk_full(error):
        return "failed", ProtocolError(
            ErrorCode.DISK_FULL, f"the disk holding {cache_dir()} filled up: {error}",
            hint="Free disk space, or point HF_HOME at a larger disk; download again to resume.",
        ).info  # fmt: skip
    log.exception("download failed", exc_info=error)
    return "failed", ProtocolError(ErrorCode.INTERNAL_ERROR, repr(error)).info
