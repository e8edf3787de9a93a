"""heap.py: with freed memory kept, a second big array reuses the first one's pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import resource, sys
import numpy as np
from backend.geometry import heap
applied = heap.keep_freed_memory() if sys.argv[1] == "keep" else False
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(100 << 20, np.uint8)  # 100 MiB, every page touched
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, faults[1], faults[2])
"""


def _probe(mode: str) -> tuple[bool, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_big_arrays_reuse_freed_pages_only_when_asked():
    applied, *kept = _probe("keep")
    _, *default = _probe("default")
    assert applied
    # glibc's default maps fresh pages for every array (huge pages where numpy asks for them:
    # hundreds of faults, not 25,600); kept, the first array's pages serve the next ones.
    assert min(default) >= 40
    assert max(kept) * 10 < min(default)


FREEZE_PROBE = """
import gc, time
from backend.geometry import heap
import backend.geometry.pipeline  # numba, llvmlite, scipy: the objects a postprocess holds
tracked = len(gc.get_objects())
frozen = heap.freeze_objects()
started = time.perf_counter()
gc.collect()
print(tracked, frozen, len(gc.get_objects()), time.perf_counter() - started)
"""


def test_frozen_objects_are_left_out_of_every_later_collection():
    """After freeze_objects the imported modules' objects are in no generation the collector
    walks, so a full collection (as at shutdown) visits almost nothing."""
    out = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    tracked, frozen, left = int(out[0]), int(out[1]), int(out[2])
    assert tracked > 50_000  # the pipeline's imports alone
    assert frozen >= tracked
    assert left < tracked // 100
