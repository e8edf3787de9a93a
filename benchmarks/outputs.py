"""Where a benchmark writes when ``--out`` is not given: a new, untracked file under
benchmarks/runs/ (git-ignored), stamped with the time, so that no run overwrites a committed
result in benchmarks/results/ unless ``--out`` names it."""

from __future__ import annotations

import time
from pathlib import Path

RUNS = Path(__file__).resolve().parent / "runs"


def default_out(name: str, suffix: str = ".json") -> Path:
    """benchmarks/runs/<name>-<YYYYmmdd-HHMMSS><suffix>, its folder made."""
    RUNS.mkdir(parents=True, exist_ok=True)
    return RUNS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
