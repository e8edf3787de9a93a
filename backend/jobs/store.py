"""The job store: the only module that speaks SQL. One SQLite file in WAL mode.

A row per job holds its state, its owner (who submitted it), the submit request (as JSON; images
live as files beside the results), progress, error and manifest, and what makes a submit
idempotent (the client's ``request_key`` and the submit's ``msg_id``). Queued jobs are claimed
in fair-share order (``_QUEUE_ORDER``: priority, then the owners in turn). Files live under
``jobs/<job_id>/``. The store knows nothing of states' meaning beyond queries; the queue
(queue.py) owns the state machine. One connection shared by the server and worker threads behind
a lock: writes are tiny, and SQLite serialises them anyway. A database from an older version
gains the new columns when opened. State changes and deletes fall back on a disk reserve
(disk_space.py) when the disk is full; progress writes do not, as they are only a convenience.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.disk_space import DiskReserve, is_disk_full

SCHEMA_VERSION = 2  # 2: owner, request_key, submit_msg_id
LOCAL_OWNER = "local"  # the owner of every job submitted without CURVE keys

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL,
    state         TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    model         TEXT NOT NULL,
    task          TEXT NOT NULL,
    prompt        TEXT NOT NULL,
    name          TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    request_json  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    progress_json TEXT,
    error_json    TEXT,
    manifest_json TEXT,
    owner         TEXT NOT NULL DEFAULT 'local',
    request_key   TEXT,
    submit_msg_id TEXT
);
"""
# Columns added after version 1, for databases made by an older backend.
_ADDED_COLUMNS = {
    "owner": "TEXT NOT NULL DEFAULT 'local'",
    "request_key": "TEXT",
    "submit_msg_id": "TEXT",
}
_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs (state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, seq);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_request_key ON jobs (owner, request_key)
    WHERE request_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_by_submit_msg ON jobs (owner, submit_msg_id)
    WHERE submit_msg_id IS NOT NULL;
"""

# The order queued jobs run in. Higher priority first; at equal priority the owners take turns:
# a job's turn is its rank among its owner's queued jobs plus the jobs that owner already has
# running, so a client with a batch in flight does not hold back one that just arrived. Ties
# (and one owner's own jobs) go first come first served.
_QUEUE_ORDER = """
SELECT q.job_id FROM jobs q
LEFT JOIN (SELECT owner, COUNT(*) AS n FROM jobs WHERE state = 'running' GROUP BY owner) r
    ON r.owner = q.owner
WHERE q.state = 'queued'
ORDER BY q.priority DESC,
    ROW_NUMBER() OVER (PARTITION BY q.owner, q.priority ORDER BY q.seq) + COALESCE(r.n, 0),
    q.seq
"""


@dataclass
class JobRecord:
    """One row of the jobs table, JSON columns decoded."""

    job_id: str
    seq: int
    state: str
    priority: int
    model: str
    task: str
    prompt: str
    name: str
    seed: int
    request: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    progress: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    owner: str = LOCAL_OWNER
    request_key: str | None = None
    submit_msg_id: str | None = None


_JSON_COLUMNS = {
    "request": "request_json",
    "progress": "progress_json",
    "error": "error_json",
    "manifest": "manifest_json",
}


class JobStore:
    """SQLite-backed rows plus a folder per job for its files."""

    def __init__(self, db_path: Path, jobs_dir: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        jobs_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir = jobs_dir
        self.reserve = DiskReserve(db_path.parent / "disk-reserve")
        self.reserve.ensure()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            try:
                self._open_schema()
            except sqlite3.Error as error:  # a new or older database on a full disk
                if not (is_disk_full(error) and self.reserve.release()):
                    raise
                self._open_schema()

    def _open_schema(self) -> None:
        """WAL mode, the table, added columns, indexes; writes nothing when all is in place."""
        if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process kill
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, declaration in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {declaration}")
        self._db.executescript(_INDEXES)
        if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """One writing statement (lock held); on a full disk, release the reserve and retry."""
        params = tuple(params)
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as error:
            if not (is_disk_full(error) and self.reserve.release()):
                raise
        return self._db.execute(sql, params)

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    # --- writes ---------------------------------------------------------------------------

    def insert(self, record: JobRecord) -> JobRecord:
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            record.seq = seq
            self._db.execute(
                "INSERT INTO jobs (job_id, seq, state, priority, model, task, prompt, name, seed,"
                " request_json, created_at, attempts, owner, request_key, submit_msg_id)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.job_id,
                    seq,
                    record.state,
                    record.priority,
                    record.model,
                    record.task,
                    record.prompt,
                    record.name,
                    record.seed,
                    json.dumps(record.request),
                    record.created_at,
                    record.attempts,
                    record.owner,
                    record.request_key,
                    record.submit_msg_id,
                ),
            )
        return record

    def update(self, job_id: str, *, expect_state: str | None = None, **values: Any) -> bool:
        """Set columns of one job; with ``expect_state``, only if it is in that state.

        Returns whether a row changed, so callers can do compare-and-set transitions.
        """
        columns, params = [], []
        for key, value in values.items():
            column = _JSON_COLUMNS.get(key, key)
            columns.append(f"{column} = ?")
            params.append(
                json.dumps(value) if key in _JSON_COLUMNS and value is not None else value
            )
        sql = f"UPDATE jobs SET {', '.join(columns)} WHERE job_id = ?"
        params.append(job_id)
        if expect_state is not None:
            sql += " AND state = ?"
            params.append(expect_state)
        with self._lock:
            return self._write(sql, params).rowcount == 1

    def update_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Progress of a running job; never touches the disk reserve (it is only a display)."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET progress_json = ? WHERE job_id = ?", (json.dumps(progress), job_id)
            )

    def claim_next(self) -> JobRecord | None:
        """Atomically move the best queued job to running and return it."""
        return self.claim_job(None)

    def claim_job(self, job_id: str | None) -> JobRecord | None:
        """Atomically move ``job_id`` (None: the best queued job) to running and return it;
        None when it is not queued (any more)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if job_id is None:
                    row = self._db.execute(_QUEUE_ORDER + " LIMIT 1").fetchone()
                else:
                    row = self._db.execute(
                        "SELECT job_id FROM jobs WHERE job_id = ? AND state = 'queued'", (job_id,)
                    ).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute(
                    "UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1,"
                    " progress_json = NULL WHERE job_id = ?",
                    (time.time(), row["job_id"]),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a full disk has SQLite roll back by itself
                    self._db.execute("ROLLBACK")
                raise
        return self.get(row["job_id"])

    def queued_in_order(self, limit: int) -> list[tuple[str, str, int]]:
        """The first ``limit`` queued jobs in claim order: (job id, model, priority)."""
        sql = (
            "SELECT o.job_id, j.model, j.priority FROM (" + _QUEUE_ORDER + " LIMIT ?) o"
            " JOIN jobs j ON j.job_id = o.job_id"
        )
        with self._lock:
            rows = self._db.execute(sql, (limit,)).fetchall()
        return [(row[0], row[1], row[2]) for row in rows]

    def delete(self, job_id: str) -> None:
        """Forget a job and its files; works on a full disk (the files go first if need be)."""
        with self._lock:
            try:
                self._write("DELETE FROM jobs WHERE job_id = ?", (job_id,))
            except sqlite3.Error as error:
                if not is_disk_full(error):
                    raise
                # Even the reserve is used up: the job's own files make the room.
                shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
                self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def find_submitted(
        self, owner: str, request_key: str | None, submit_msg_id: str | None
    ) -> JobRecord | None:
        """The job ``owner`` already submitted with this request key or submit msg_id."""
        with self._lock:
            row = None
            if request_key is not None:
                row = self._db.execute(
                    "SELECT * FROM jobs WHERE owner = ? AND request_key = ?", (owner, request_key)
                ).fetchone()
            if row is None and submit_msg_id is not None:
                row = self._db.execute(
                    "SELECT * FROM jobs WHERE owner = ? AND submit_msg_id = ?",
                    (owner, submit_msg_id),
                ).fetchone()
        return _record(row) if row else None

    # --- reads ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def list(
        self, states: Iterable[str] = (), limit: int = 100, owner: str | None = None
    ) -> list[JobRecord]:
        """Newest first; all states when ``states`` is empty, all owners when ``owner`` is None."""
        states = tuple(states)
        conditions, params = [], []
        if states:
            conditions.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if owner is not None:
            conditions.append("owner = ?")
            params.append(owner)
        sql = "SELECT * FROM jobs"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit)).fetchall()
        return [_record(row) for row in rows]

    def ids_in_state(self, state: str) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs WHERE state = ?", (state,)).fetchall()
        return [row[0] for row in rows]

    def queue_position(self, job_id: str) -> int | None:
        """1 for the next job to run; None when the job is not queued (fair-share order)."""
        with self._lock:
            rows = self._db.execute(_QUEUE_ORDER).fetchall()
        for position, row in enumerate(rows, start=1):
            if row["job_id"] == job_id:
                return position
        return None

    def count_queued_of(self, owner: str) -> int:
        """How many queued jobs ``owner`` has (the per-client cap)."""
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND owner = ?", (owner,)
            ).fetchone()[0]

    def count(self, state: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)
            ).fetchone()[0]

    def counts_by_state_and_model(self) -> dict[tuple[str, str], int]:
        """How many jobs the store holds, per (state, model)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, model, COUNT(*) FROM jobs GROUP BY state, model"
            ).fetchall()
        return {(row[0], row[1]): row[2] for row in rows}

    def finished_since(self, since: float) -> list[JobRecord]:
        """Jobs that ended at or after ``since`` (a time.time()), oldest end first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE finished_at IS NOT NULL AND finished_at >= ?"
                " AND state IN ('succeeded', 'failed', 'cancelled') ORDER BY finished_at",
                (since,),
            ).fetchall()
        return [_record(row) for row in rows]

    def ended_since(self, since: float) -> list[tuple[str, float]]:
        """(job id, end) of the jobs that ended at or after ``since``, oldest end first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, finished_at FROM jobs WHERE finished_at IS NOT NULL"
                " AND finished_at >= ? AND state IN ('succeeded', 'failed', 'cancelled')"
                " ORDER BY finished_at",
                (since,),
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def finished_to_expire(self, older_than: float, keep_newest: int) -> list[str]:
        """Finished jobs past the age limit or beyond the newest ``keep_newest``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id FROM jobs WHERE finished_at IS NOT NULL AND"
                " state IN ('succeeded', 'failed', 'cancelled')"
                " ORDER BY finished_at DESC"
            ).fetchall()
            old = self._db.execute(
                "SELECT job_id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?"
                " AND state IN ('succeeded', 'failed', 'cancelled')",
                (older_than,),
            ).fetchall()
        expired = {row[0] for row in rows[keep_newest:]} | {row[0] for row in old}
        return sorted(expired)


def _record(row: sqlite3.Row) -> JobRecord:
    values = dict(row)
    decoded = {}
    for key, column in _JSON_COLUMNS.items():
        raw = values.pop(column)
        decoded[key] = json.loads(raw) if raw else None
    decoded["request"] = decoded["request"] or {}
    return JobRecord(**values, **decoded)
