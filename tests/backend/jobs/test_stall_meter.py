"""StallMeter: a block's garbage-collector pauses and its thread's time off the CPU."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from backend.jobs.stall_meter import StallMeter


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_sleeping_is_waiting_and_working_is_not() -> None:
    with StallMeter() as asleep:
        time.sleep(0.3)
    with StallMeter() as working:
        busy(0.3)
    assert asleep.figures()["waited_s"] >= 0.25
    # Working is not waiting: compared with the sleep, not with zero, so that a loaded machine
    # taking the CPU away now and then does not fail it.
    assert working.figures()["waited_s"] < asleep.figures()["waited_s"] - 0.1


def test_waiting_for_the_gil_counts_as_waiting() -> None:
    stop = threading.Event()

    def hog() -> None:  # a busy Python thread: the measured one must wait for the GIL
        while not stop.is_set():
            pass

    other = threading.Thread(target=hog)
    other.start()
    try:
        with StallMeter() as meter:
            busy(0.4)
    finally:
        stop.set()
        other.join()
    assert meter.figures()["waited_s"] >= 0.1
    assert meter.figures()["other_threads_cpu_s"] >= 0.1  # what it waited for: the busy thread


def test_a_full_collection_inside_the_block_is_counted_and_outside_it_is_not() -> None:
    junk = [[i] for i in range(300_000)]  # objects for the collector to walk
    with StallMeter() as meter:
        gc.collect()
    gc.collect()  # after the block: not its pause
    assert meter.collections >= 1
    assert meter.figures()["gc_s"] > 0.0
    before = meter.figures()["gc_s"]
    gc.collect()
    assert meter.figures()["gc_s"] == before
    assert StallMeter._on_gc not in gc.callbacks  # nothing left hooked once no meter is open
    del junk


@pytest.mark.parametrize("nested", [False, True])
def test_meters_nest(nested: bool) -> None:
    with StallMeter() as outer:
        if nested:
            with StallMeter() as inner:
                gc.collect()
            assert inner.collections >= 1
        else:
            gc.collect()
    assert outer.collections >= 1
