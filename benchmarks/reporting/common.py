"""What every part of the benchmark report reads: the results folder and small helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"  # benchmarks/results


def load_result(name: str) -> dict[str, Any] | None:
    """A committed result's JSON, or None when the file is not there (left out, never guessed)."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def too_few(repeats: int) -> list[str]:
    """The repeats rule's problem line, if ``repeats`` breaks it."""
    return [] if repeats >= 5 else [f"{repeats} repeats (rule: at least 5)"]


def spread(median: float, row: dict[str, float]) -> str:
    """``median (min-max)`` of a summary row."""
    return f"{median:.3f} ({row['min']:.3f}-{row['max']:.3f})"


def span(row: dict[str, float]) -> str:
    """``median (min-max)`` of a summary row with a median."""
    return spread(row["median"], row)
