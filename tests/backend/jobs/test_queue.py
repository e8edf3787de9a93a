"""The queue's state machine on a real SQLite file: priority, cancel, crash recovery, retention."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backend.jobs.queue import JobQueue
from backend.jobs.spec import JobSpec, StoredImage
from backend.jobs.store import JobStore
from backend.settings import Retention
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import Manifest, Progress


@pytest.fixture
def events() -> list:
    return []


def make_queue(tmp_path: Path, events: list, **kwargs) -> JobQueue:
    store = JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs")
    return JobQueue(store, lambda job_id, message: events.append((job_id, message)), **kwargs)


def submit(queue: JobQueue, priority: int = 0, images=()) -> str:
    """``images``: (bytes, file suffix, view) tuples."""
    spec = JobSpec(
        model="procedural",
        task="text",
        prompt="a torus",
        seed=1,
        images=tuple(
            StoredImage(f"{i}{suffix}", view) for i, (_, suffix, view) in enumerate(images)
        ),
    )
    record, _ = queue.submit(spec, tuple(data for data, _, _ in images), priority=priority)
    return record.job_id


MANIFEST = Manifest(
    format="glb",
    faces=1,
    vertices=3,
    bbox_min=(0, 0, 0),
    bbox_max=(1, 1, 1),
    seed=1,
    model="procedural",
)


def test_priority_then_fifo(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    first, second, urgent = submit(queue), submit(queue), submit(queue, priority=5)
    assert queue.store.queue_position(urgent) == 1
    assert queue.store.queue_position(first) == 2
    order = [queue.claim(0)[0].job_id for _ in range(3)]
    assert order == [urgent, first, second]
    assert queue.claim(0) is None


def test_db_is_wal(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    mode = queue.store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_images_stored_as_files(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    job_id = submit(queue, images=[(b"png-bytes", ".png", "front")])
    record = queue.store.get(job_id)
    assert record.request["images"] == [{"file": "0.png", "view": "front"}]
    assert (queue.store.job_dir(job_id) / "inputs" / "0.png").read_bytes() == b"png-bytes"


def test_success_writes_result_and_publishes(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    job_id = submit(queue)
    queue.claim(0)
    queue.report_progress(job_id, Progress(stage="field", step=1, total=2, fraction=0.3), None)
    queue.succeed(job_id, MANIFEST, b"glTF...", b"png")
    record = queue.store.get(job_id)
    assert record.state == "succeeded" and record.manifest["faces"] == 1
    assert queue.result_path(record).read_bytes() == b"glTF..."
    assert [m.TYPE for _, m in events] == ["progress_event", "result_event"]


def test_cancel_queued_and_running(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    running, queued = submit(queue), submit(queue)
    _, token = queue.claim(0)
    assert queue.cancel(queued) == "cancelled"
    assert queue.cancel(running) == "running"  # takes effect at the model's next step
    assert token.cancelled
    with pytest.raises(ProtocolError) as caught:
        queue.cancel("nope")
    assert caught.value.code is ErrorCode.UNKNOWN_JOB


def test_cancel_offline_goes_through_the_state_machine(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    running, queued, done = submit(queue), submit(queue), submit(queue)
    queue.claim(0)  # a backend died while running it
    for job_id in (queued, running):
        queue.cancel_offline(job_id)
        record = queue.store.get(job_id)
        assert record.state == "cancelled" and record.finished_at is not None
        assert record.error["code"] == ErrorCode.CANCELLED.value
    assert queue.recover() == ([], [])  # a cancelled running job is not run again
    assert queue.claim(0)[0].job_id == done  # the next backend runs only the live job
    queue.succeed(done, MANIFEST, b"glb", None)
    for job_id, code in ((done, ErrorCode.JOB_FINISHED), (queued, ErrorCode.JOB_FINISHED),
                         ("nope", ErrorCode.UNKNOWN_JOB)):
        with pytest.raises(ProtocolError) as caught:
            queue.cancel_offline(job_id)
        assert caught.value.code is code and caught.value.field is None
        if job_id == done:
            assert "already ended (succeeded)" in str(caught.value)
    assert [m.TYPE for _, m in events] == ["result_event"]  # offline: nobody to tell


def test_cancel_offline_never_overwrites_a_job_that_finished_meanwhile(
    tmp_path, events, monkeypatch
) -> None:
    """A backend (another connection to the same file) finishes the job between our read and
    our write: the write must miss, and the job stays succeeded."""
    queue = make_queue(tmp_path, events)
    job_id = submit(queue)
    queue.claim(0)
    backend = JobQueue(JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs"), lambda *_: None)
    real_get = queue.store.get

    def get_then_finish_elsewhere(wanted: str):
        record = real_get(wanted)
        if record.state == "running":
            backend.succeed(wanted, MANIFEST, b"glb", None)
        return record

    monkeypatch.setattr(queue.store, "get", get_then_finish_elsewhere)
    with pytest.raises(ProtocolError) as caught:
        queue.cancel_offline(job_id)
    assert caught.value.code is ErrorCode.JOB_FINISHED
    assert real_get(job_id).state == "succeeded" and real_get(job_id).error is None


def test_crash_recovery_retries_once_then_fails(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events)
    job_id = submit(queue)
    queue.claim(0)  # attempt 1, then the process "dies"
    queue.store.close()
    queue = make_queue(tmp_path, events)
    assert queue.recover() == ([job_id], [])
    record, _ = queue.claim(0)  # attempt 2, dies again
    assert record.attempts == 2
    queue.store.close()
    queue = make_queue(tmp_path, events)
    assert queue.recover() == ([], [job_id])
    record = queue.store.get(job_id)
    assert record.state == "failed" and record.error["code"] == "interrupted"


def test_retention_expires_old_and_excess_results(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events, retention=Retention(max_age_days=1, max_finished_jobs=2))
    ids = []
    for _ in range(4):
        job_id = submit(queue)
        queue.claim(0)
        queue.succeed(job_id, MANIFEST, b"glTF", None)
        ids.append(job_id)
    live = submit(queue)
    queue.store.update(ids[3], finished_at=time.time() - 3 * 86400)  # old
    expired = queue.expire()
    # Newest two kept (ids 2 and 1); id 0 is beyond the count, id 3 beyond the age.
    assert set(expired) == {ids[0], ids[3]}
    assert queue.store.get(live) is not None
    for job_id in expired:
        assert not queue.store.job_dir(job_id).exists()


def test_queue_full(tmp_path, events) -> None:
    queue = make_queue(tmp_path, events, max_queued=2)
    submit(queue), submit(queue)
    with pytest.raises(ProtocolError) as caught:
        submit(queue)
    assert caught.value.code is ErrorCode.QUEUE_FULL
