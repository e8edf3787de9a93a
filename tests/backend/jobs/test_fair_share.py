"""Fair share in the queue, on a real SQLite store: owners take turns at equal priority, and a
per-client cap refuses a client's submit past it with ``client_queue_full``."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.jobs.queue import JobQueue
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobStore
from shared_protocol.errors import ErrorCode, ProtocolError


def make_queue(tmp_path: Path, **kwargs) -> JobQueue:
    store = JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs")
    return JobQueue(store, lambda job_id, message: None, **kwargs)


def submit(queue: JobQueue, owner: str, priority: int = 0) -> str:
    spec = JobSpec(model="procedural", task="text", prompt=f"{owner}'s torus", seed=1)
    record, _ = queue.submit(spec, (), owner=owner, priority=priority)
    return record.job_id


def owners_in_claim_order(queue: JobQueue, count: int) -> list[str]:
    return [queue.claim(0)[0].owner for _ in range(count)]


def test_owners_interleave_at_equal_priority(tmp_path) -> None:
    queue = make_queue(tmp_path)
    for _ in range(4):
        submit(queue, "alice")
    for _ in range(2):
        submit(queue, "bob")
    submit(queue, "carol")
    order = owners_in_claim_order(queue, 7)
    assert order == ["alice", "bob", "carol", "alice", "bob", "alice", "alice"]


def test_a_newcomer_goes_before_the_rest_of_a_batch_already_running(tmp_path) -> None:
    queue = make_queue(tmp_path)
    batch = [submit(queue, "alice") for _ in range(3)]
    assert queue.claim(0)[0].job_id == batch[0]  # alice has one running now
    newcomer = submit(queue, "bob")
    assert queue.store.queue_position(newcomer) == 1
    assert queue.store.queue_position(batch[1]) == 2
    assert queue.claim(0)[0].job_id == newcomer


def test_priority_still_comes_first_and_each_owner_keeps_its_order(tmp_path) -> None:
    queue = make_queue(tmp_path)
    a1, a2 = submit(queue, "alice"), submit(queue, "alice")
    b1 = submit(queue, "bob")
    urgent = submit(queue, "alice", priority=5)
    claimed = [queue.claim(0)[0].job_id for _ in range(4)]
    assert claimed[0] == urgent
    # alice has one running (the urgent one): bob's turn, then alice's in her order.
    assert claimed[1:] == [b1, a1, a2]


def test_the_per_client_cap_refuses_with_its_own_code(tmp_path) -> None:
    queue = make_queue(tmp_path, max_queued_per_client=2)
    submit(queue, "alice")
    submit(queue, "alice")
    with pytest.raises(ProtocolError) as caught:
        submit(queue, "alice")
    assert caught.value.code is ErrorCode.CLIENT_QUEUE_FULL
    assert len(list((tmp_path / "jobs").iterdir())) == 2  # the refused one left nothing
    submit(queue, "bob")  # another client is not held back
    queue.claim(0)  # alice's first starts: she may queue one more
    submit(queue, "alice")
