"""Jobs go first: the start-up warm-up's compiled calls and steps wait while a job runs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from backend import job_priority
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelRegistry, discover_adapters
from backend.torch_compile import compile_or_eager
from tests.support.job_runs import open_queue, run_jobs, spec

WAIT_S = 10.0


def _wrapped(record: list[float] | None = None, pause_s: float = 0.002):
    """A compiled call (the turns apply to any callable that compile_or_eager wraps)."""

    def call() -> None:
        if record is not None:
            record.append(time.monotonic())
        time.sleep(pause_s)

    def eager() -> None:  # never used: the stand-in "compiles"; a distinct function all the same
        raise AssertionError("the eager fallback ran")

    return compile_or_eager(call, eager, "a stand-in for compiled code")


def _background_loop(call, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        with job_priority.background():
            while not stop.is_set():
                call()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_background_compiled_calls_wait_while_a_job_runs() -> None:
    starts: list[float] = []
    stop = threading.Event()
    thread = _background_loop(_wrapped(starts), stop)
    try:
        deadline = time.monotonic() + WAIT_S
        while len(starts) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        with job_priority.job_running():
            began = time.monotonic()
            time.sleep(0.3)
            ended = time.monotonic()
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join(WAIT_S)
    during = [t for t in starts if began < t < ended]
    assert not during, f"{len(during)} background calls began while the job ran"
    assert any(t > ended for t in starts), "the background work did not resume after the job"


def test_jobs_own_compiled_calls_do_not_wait_for_other_jobs() -> None:
    call = _wrapped()
    done = threading.Event()

    def job() -> None:
        with job_priority.job_running():
            call()
        done.set()

    with job_priority.job_running():  # another job runs meanwhile (a second GPU's worker)
        thread = threading.Thread(target=job)
        thread.start()
        assert done.wait(WAIT_S), "a job's compiled call waited for another job to end"
    thread.join(WAIT_S)


def test_a_background_call_nested_in_its_own_turn_never_waits_for_the_job() -> None:
    """The job starts while the warm-up is inside a compiled call that runs another: that inner
    call must go on (its thread holds the turn), else the job, waiting for the turn, and the
    warm-up, waiting for the job, would wait for each other for good."""
    inside, job_started = threading.Event(), threading.Event()
    inner = _wrapped()
    finished: list[str] = []

    def outer_body() -> None:
        inside.set()
        job_started.wait(WAIT_S)
        inner()
        finished.append("background")

    outer = compile_or_eager(outer_body, lambda: None, "outer")

    def background() -> None:
        with job_priority.background():
            outer()

    thread = threading.Thread(target=background, daemon=True)
    thread.start()
    assert inside.wait(WAIT_S)
    job_call = _wrapped()
    with job_priority.job_running():
        job_started.set()
        runner = threading.Thread(target=lambda: (job_call(), finished.append("job")), daemon=True)
        runner.start()
        runner.join(WAIT_S)
    thread.join(WAIT_S)
    assert finished == ["background", "job"], finished


def test_give_way_blocks_only_background_threads() -> None:
    with job_priority.job_running():
        assert job_priority.give_way(timeout_s=0.0)  # a job's own thread: no wait
        outcome: list[bool] = []

        def background() -> None:
            with job_priority.background():
                outcome.append(job_priority.give_way(timeout_s=0.2))

        thread = threading.Thread(target=background)
        thread.start()
        thread.join(WAIT_S)
    assert outcome == [False]  # it waited the whole 0.2 s: the job was still running
    with job_priority.background():
        assert job_priority.give_way(timeout_s=0.0)  # no job now: it goes on


class _CountingProcedural(ProceduralAdapter):
    """The procedural model, noting how many jobs the process marks as running."""

    id = "counting"
    seen: list[int] = []

    def _generate(self, request, progress, cancel):
        self.seen.append(job_priority.jobs_running())
        return super()._generate(request, progress, cancel)


def test_a_worker_marks_its_job_as_running(tmp_path: Path) -> None:
    registry = ModelRegistry({**discover_adapters(), "counting": _CountingProcedural})
    queue = open_queue(tmp_path)
    _CountingProcedural.seen.clear()
    (job_id,) = run_jobs(queue, registry, [spec("counting")])
    assert queue.store.get(job_id).state == "succeeded"
    assert _CountingProcedural.seen == [1]
    assert job_priority.jobs_running() == 0  # and unmarks it when the job ends
