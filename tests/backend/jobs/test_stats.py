"""jobs/stats.py: per-model figures over jobs that the real worker ran into a real job store."""

from __future__ import annotations

import pytest

from backend.jobs.stats import model_stats, percentile, stage_seconds
from tests.support.job_runs import (
    MODEL_BUG,
    open_queue,
    registry_with_failing_model,
    run_jobs,
    spec,
)


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    queue = open_queue(tmp_path_factory.mktemp("data"))
    cancelled = queue.submit(spec(prompt="never runs"), ())[0].job_id
    queue.cancel(cancelled)
    run_jobs(
        queue,
        registry_with_failing_model(),
        [spec(), spec(prompt="a blue cube"), spec(prompt="a sphere"),
         spec("failing", MODEL_BUG), spec("failing", "a sphere")],
    )  # fmt: skip
    yield queue
    queue.store.close()


def test_counts_success_rate_and_failures_by_code(queue) -> None:
    figures = {f.model: f for f in model_stats(queue.store.list(limit=100))}
    procedural, failing = figures["procedural"], figures["failing"]
    assert (procedural.jobs, procedural.succeeded, procedural.cancelled) == (4, 3, 1)
    assert procedural.success_rate == 1.0  # a cancel is not a failure
    assert (failing.jobs, failing.failed, failing.success_rate) == (2, 2, 0.0)
    assert failing.failures == {"model_failed": 1, "geometry_failed": 1}
    assert failing.stages == {}  # failures' times are not stage times


def test_stage_percentiles_and_gpu_seconds_come_from_the_rows(queue) -> None:
    records = queue.store.list(limit=100)
    procedural = next(f for f in model_stats(records) if f.model == "procedural")
    succeeded = [r for r in records if r.model == "procedural" and r.state == "succeeded"]
    generate = sorted(r.manifest["timings_s"]["generate"] for r in succeeded)
    assert procedural.stages["generate"].count == 3
    assert procedural.stages["generate"].p50_s == generate[1]
    assert procedural.stages["generate"].p95_s == generate[2]
    names = list(procedural.stages)
    assert names[0] == "queue" and names[-2:] == ["run", "total"]
    assert any(name.startswith("pipeline.") for name in procedural.stages)
    # A sub-stage (pipeline.bake.splat) comes under its parent, before the parent's next sibling.
    nested = [n for n in names if n.rpartition(".")[0] in names]
    assert nested
    for child in nested:
        parent = child.rpartition(".")[0]
        between = names[names.index(parent) + 1 : names.index(child)]
        assert all(n.startswith(parent + ".") for n in between), names
    # The queued-then-cancelled job never held the device: it adds nothing.
    ran = [r for r in records if r.model == "procedural" and r.started_at is not None]
    assert len(ran) == 3
    assert procedural.gpu_seconds == pytest.approx(sum(r.finished_at - r.started_at for r in ran))
    for record in succeeded:
        times = stage_seconds(record)
        assert times["run"] >= times["generate"]  # the device time holds every model stage
        assert times["total"] == pytest.approx(times["queue"] + times["run"])


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.95) == 5.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
