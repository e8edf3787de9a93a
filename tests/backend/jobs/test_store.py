"""store.py on a real SQLite file: a version-1 database gains the ownership columns when opened,
and jobs are found again by owner, request key and submit msg_id."""

from __future__ import annotations

import sqlite3
import time

from backend.jobs.store import LOCAL_OWNER, SCHEMA_VERSION, JobRecord, JobStore

# The jobs table as the first release made it (no owner, request_key, submit_msg_id).
VERSION_1 = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, state TEXT NOT NULL,
    priority INTEGER NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL, prompt TEXT NOT NULL,
    name TEXT NOT NULL, seed INTEGER NOT NULL, request_json TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, progress_json TEXT, error_json TEXT, manifest_json TEXT
);
CREATE INDEX jobs_by_queue ON jobs (state, priority DESC, seq);
CREATE INDEX jobs_by_finish ON jobs (finished_at);
PRAGMA user_version=1;
"""


def record(job_id: str, **changes) -> JobRecord:
    values = dict(
        job_id=job_id, seq=0, state="queued", priority=0, model="procedural", task="text",
        prompt="a torus", name="", seed=1, request={}, created_at=time.time(),
    )  # fmt: skip
    return JobRecord(**{**values, **changes})


def test_a_version_1_database_gains_the_new_columns(tmp_path) -> None:
    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(VERSION_1)
    old.execute(
        "INSERT INTO jobs (job_id, seq, state, priority, model, task, prompt, name, seed,"
        " request_json, created_at) VALUES ('old', 1, 'succeeded', 0, 'procedural', 'text',"
        " 'a cube', '', 3, '{}', 1.0)"
    )
    old.commit()
    old.close()

    store = JobStore(path, tmp_path / "jobs")
    columns = {row[1] for row in store._db.execute("PRAGMA table_info(jobs)")}
    assert {"owner", "request_key", "submit_msg_id"} <= columns
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    migrated = store.get("old")
    assert migrated is not None and migrated.owner == LOCAL_OWNER
    assert migrated.request_key is None and migrated.seed == 3
    store.insert(record("new", owner="key-a", request_key="r1", submit_msg_id="m1"))
    store.close()

    reopened = JobStore(path, tmp_path / "jobs")  # opening again changes nothing
    assert [r.job_id for r in reopened.list()] == ["new", "old"]
    reopened.close()


def test_jobs_are_found_by_owner_request_key_and_msg_id(tmp_path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs")
    store.insert(record("a1", owner="alice", request_key="chair", submit_msg_id="m1"))
    store.insert(record("b1", owner="bob", request_key="chair", submit_msg_id="m1"))
    assert store.find_submitted("alice", "chair", None).job_id == "a1"
    assert store.find_submitted("bob", None, "m1").job_id == "b1"
    assert store.find_submitted("alice", "table", "m2") is None
    assert [r.job_id for r in store.list(owner="alice")] == ["a1"]
    assert [r.job_id for r in store.list()] == ["b1", "a1"]
    store.close()
