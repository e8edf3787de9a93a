"""Several devices under one supervisor (jobs/device_placer.py): affinity, work conservation,
budgets, and a worker killed mid-job.

Real worker threads, real SQLite queue, real model caches on CPU "devices" (``cpu`` three times),
running the procedural model under ids that declare a VRAM size (models/builtin/sized.py).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from backend.jobs.placement import ActorView, QueuedJob, assign
from backend.jobs.queue import JobQueue
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobStore
from backend.jobs.supervisor import WorkerSupervisor
from backend.models.builtin.sized import sized_model
from backend.models.registry import CacheEvent, ModelRegistry
from tests.backend.jobs.test_supervisor import kill_thread

TINY = {"resolution": 24, "steps": 4}


class Farm:
    """A supervisor over ``devices`` with the loads each worker thread made, and a sampler of
    idle workers while a job they may run waits."""

    def __init__(self, tmp_path: Path, devices, budgets, models, max_passes: int | None = None):
        self.registry = ModelRegistry(adapters={m.id: m for m in models})
        self.loads: Counter[tuple[int, str]] = Counter()  # (worker thread ident, model)
        self.ran: dict[str, list[int]] = {}
        self.registry.cache_listeners.append(self._on_cache)
        store = JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs")
        self.queue = JobQueue(store, lambda job_id, message: None, max_queued=10_000)
        self.stop = threading.Event()
        self.supervisor = WorkerSupervisor(self.queue, self.registry, devices, self.stop, budgets)
        if max_passes is not None:
            self.supervisor.placer._max_passes = max_passes
        self.longest_idle_s = 0.0

    def _on_cache(self, event: CacheEvent) -> None:
        if event.kind == "load":
            self.loads[(threading.get_ident(), event.model_id)] += 1

    def submit(self, models: list[str]) -> list[str]:
        ids = []
        for i, model in enumerate(models):
            spec = JobSpec(model=model, task="text", prompt=f"a cube {i}", parameters=TINY,
                           target_faces=300, texture_size=256)  # fmt: skip
            ids.append(self.queue.submit(spec, ())[0].job_id)
        return ids

    def run_until_done(self, job_ids: list[str], timeout_s: float = 240.0, on_tick=None) -> None:
        from backend.jobs.placement import may_run

        idle_since: float | None = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.supervisor.check()
            if on_tick is not None:
                on_tick()
            states = [self.queue.store.get(j).state for j in job_ids]
            if all(s in ("succeeded", "failed", "cancelled") for s in states):
                return
            queued = self.queue.store.queued_in_order(64)
            workers = [w for w in self.supervisor.workers() if w.is_alive()]
            views = [ActorView(w.label, w.current_job_id is not None,
                               budget_mb=w.cache.budget_mb) for w in workers]  # fmt: skip
            idle_with_work = any(
                not view.busy
                and any(may_run(view, self.registry.adapter_class(m).vram_mb, views)
                        for _, m, _ in queued)
                for view in views
            )  # fmt: skip
            now = time.monotonic()
            if idle_with_work:
                idle_since = now if idle_since is None else idle_since
                self.longest_idle_s = max(self.longest_idle_s, now - idle_since)
            else:
                idle_since = None
            time.sleep(0.01)
        raise AssertionError(f"jobs not done: {Counter(states)}")

    def close(self) -> None:
        self.stop.set()
        self.queue.wake_all()
        self.supervisor.join(10)
        self.queue.store.close()


@pytest.fixture
def farms():
    made: list[Farm] = []
    yield made
    for farm in made:
        farm.close()


def test_a_mixed_stream_loads_each_model_once_per_device_and_keeps_big_models_off_small_ones(
    tmp_path, farms
) -> None:
    models = [sized_model("small-a", 400, 0.2), sized_model("small-b", 400, 0.2),
              sized_model("big", 900, 0.2)]  # fmt: skip
    # d0 and d1 hold all three (1700 MB); the small device holds both small ones, never "big".
    farm = Farm(tmp_path, ("cpu", "cpu", "cpu"), (2000, 2000, 850), models)
    farms.append(farm)
    farm.supervisor.start()
    stream = ["small-a", "big", "small-b", "small-a", "big", "small-b"] * 4
    job_ids = farm.submit(stream)
    farm.run_until_done(job_ids)

    assert all(farm.queue.store.get(j).state == "succeeded" for j in job_ids)
    assert set(farm.loads.values()) == {1}, f"a model loaded twice on a device: {farm.loads}"
    labels = {w.ident: w.label for w in farm.supervisor.workers()}
    small = next(ident for ident, label in labels.items() if label == "cpu#2")
    assert (small, "big") not in farm.loads, "the big model was placed on the small device"
    stats = farm.supervisor.placer.stats()
    assert sum(s.jobs for s in stats.values()) == len(stream)
    # every job that did not load its model found it loaded: the affinity hits
    assert sum(s.affinity_hits for s in stats.values()) == len(stream) - len(farm.loads)
    assert len({ident for ident, _ in farm.loads}) == 3, "a device stayed idle all along"
    assert farm.longest_idle_s < 0.3, f"a worker idled {farm.longest_idle_s:.2f} s with work"


def test_two_small_devices_keep_one_model_each_instead_of_swapping(tmp_path, farms) -> None:
    models = [sized_model("left", 400, 0.3), sized_model("right", 400, 0.3)]
    farm = Farm(tmp_path, ("cpu", "cpu"), 500, models, max_passes=100)
    farms.append(farm)
    farm.supervisor.start()
    stream = ["left", "right"] * 10
    farm.run_until_done(farm.submit(stream))
    # queue order alone swaps the models on both devices at nearly every job
    assert sum(farm.loads.values()) <= 4, f"models reloaded: {farm.loads}"


def test_a_worker_killed_mid_job_leaves_its_job_to_another_device(tmp_path, farms) -> None:
    models = [sized_model("slow", 0, 0.0)]
    farm = Farm(tmp_path, ("cpu", "cpu"), None, models)
    farms.append(farm)
    farm.supervisor.start()
    job_ids = farm.submit(["slow"] * 6)
    killed: list[str] = []

    def kill_one_mid_job() -> None:
        if killed:
            return
        for worker in farm.supervisor.workers():
            record = farm.queue.store.get(worker.current_job_id or "")
            if record is not None and record.progress is not None:
                killed.append(record.job_id)
                kill_thread(worker)
                return

    farm.run_until_done(job_ids, on_tick=kill_one_mid_job)
    assert killed, "no job was seen running"
    records = [farm.queue.store.get(j) for j in job_ids]
    assert all(r.state == "succeeded" for r in records), [r.state for r in records]
    assert farm.queue.store.get(killed[0]).attempts == 2  # the dead worker's, then another's
    assert sum(r.attempts for r in records) == len(job_ids) + 1  # nothing ran twice otherwise
    assert farm.queue.store.queued_in_order(10) == []
    assert sorted(s.restarts for s in farm.supervisor.health()) == [0, 1]


def test_an_exit_raised_inside_native_code_is_a_crash_not_a_failed_job(tmp_path, farms) -> None:
    """A thread kill landing in numba or a C extension surfaces as SystemError caused by the
    SystemExit; the worker must die and the job be retried, as for a plain SystemExit."""
    base = sized_model("native", 0, 0.0)
    raised: list[int] = []

    def generate(self, request, progress, cancel):
        if not raised:
            raised.append(1)
            try:
                raise SystemExit()
            except SystemExit as exit_:  # what CPython makes of an exit set inside native code
                raise SystemError("returned a result with an exception set") from exit_
        return base.generate(self, request, progress, cancel)

    model = type("NativeExit", (base,), {"generate": generate})
    farm = Farm(tmp_path, ("cpu",), None, [model])
    farms.append(farm)
    farm.supervisor.start()
    (job_id,) = farm.submit(["native"])
    farm.run_until_done([job_id])
    record = farm.queue.store.get(job_id)
    assert raised and record.state == "succeeded", (record.state, record.error)
    assert record.attempts == 2
    assert [s.restarts for s in farm.supervisor.health()] == [1]


# --- the pure rules -----------------------------------------------------------------------


def test_affinity_lets_a_holder_skip_ahead_to_its_model() -> None:
    workers = [ActorView("x", False, ("a",), 400, 500), ActorView("y", False, ("b",), 400, 500)]
    jobs = [QueuedJob("1", "a", 0, 400), QueuedJob("2", "a", 0, 400), QueuedJob("3", "b", 0, 400)]
    given = assign(workers, jobs)
    assert given["x"].actor == "1" and given["y"].actor == "3"
    assert given["x"].model_loaded and given["y"].model_loaded


def test_no_free_worker_idles_while_a_job_it_may_run_waits() -> None:
    workers = [ActorView("x", False, ("a",), 400, 500), ActorView("y", False, (), 0, 500)]
    given = assign(workers, [QueuedJob("1", "a", 0, 400), QueuedJob("2", "a", 0, 400)])
    assert {p.actor for p in given.values()} == {"1", "2"}


def test_a_model_goes_only_where_it_fits_unless_it_fits_nowhere() -> None:
    small = ActorView("small", False, budget_mb=500)
    large = ActorView("large", True, budget_mb=1000)
    assert assign([small, large], [QueuedJob("1", "big", 0, 900)]) == {}
    huge = [QueuedJob("1", "huge", 0, 5000)]
    assert assign([small, large], huge) == {}  # waits for the largest device
    assert assign([small, ActorView("large", False, budget_mb=1000)], huge)["large"].actor == "1"


def test_an_overdue_job_goes_before_affinity_and_priority_bounds_affinity() -> None:
    holder = [ActorView("x", False, ("a",), 400, 500)]
    jobs = [QueuedJob("1", "b", 0, 400, overdue=True), QueuedJob("2", "a", 0, 400)]
    assert assign(holder, jobs)["x"].actor == "1"
    urgent = [QueuedJob("1", "b", 5, 400), QueuedJob("2", "a", 0, 400)]
    assert assign(holder, urgent)["x"].actor == "1"


def test_serve_takes_comma_separated_devices_and_one_budget_per_device() -> None:
    from backend.cli import build_parser
    from backend.cli.options import settings_from
    from backend.jobs.supervisor import device_budgets, device_labels

    args = build_parser().parse_args(
        ["serve", "--device", "cpu,cpu", "--device", "cpu", "--vram-budget-mb", "900,900,400"]
    )
    settings = settings_from(args)
    assert settings.devices == ("cpu", "cpu", "cpu")
    assert settings.device_budgets_mb == (900, 900, 400)
    assert device_labels(settings.devices) == ("cpu#0", "cpu#1", "cpu#2")
    assert device_budgets(500, 2) == (500, 500)
    with pytest.raises(ValueError):
        device_budgets((1, 2), 3)
