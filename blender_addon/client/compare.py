"""Compare runs as plain data (no bpy): which jobs belong to which compare, and their figures.

A compare sends one input to several models, one job per model. Each job carries the compare in
its ``request_key`` (``compare:<compare id>:<place in the row>:<model>``), which the backend
stores with the job and returns in every ``JobInfo``; so what a compare is (its jobs, their
order, their states and figures) is never kept anywhere but in the job records themselves, and
is rebuilt from the backend's job list after a restart of either side. The key also makes each
submit idempotent: a resent submit is answered with the job the first one made.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from .records import JobRecord

KEY_PREFIX = "compare"
ID_HEX_CHARS = 12


@dataclass(frozen=True)
class CompareKey:
    """Where one job sits in a compare."""

    compare_id: str
    index: int  # its place in the row, left to right
    model: str

    def __str__(self) -> str:
        return f"{KEY_PREFIX}:{self.compare_id}:{self.index}:{self.model}"


def new_compare_id() -> str:
    return secrets.token_hex(ID_HEX_CHARS // 2)


def parse_key(request_key: str | None) -> CompareKey | None:
    """The compare a job belongs to, or None for a job that is not part of one."""
    if not request_key:
        return None
    parts = request_key.split(":", 3)
    if len(parts) != 4 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2].isdigit():
        return None
    return CompareKey(parts[1], int(parts[2]), parts[3])


@dataclass(frozen=True)
class CompareEntry:
    """One model's job in a compare, with the figures the table and labels show."""

    key: CompareKey
    job: JobRecord

    @property
    def seconds(self) -> float | None:
        """The job's run time on the backend (load, generate and the pipeline; no queueing)."""
        manifest = self.job.manifest
        return sum(manifest.timings_s.values()) if manifest and manifest.timings_s else None

    @property
    def faces(self) -> int | None:
        return self.job.manifest.faces if self.job.manifest else None

    @property
    def peak_vram_mb(self) -> float | None:
        return self.job.manifest.peak_vram_mb if self.job.manifest else None


@dataclass(frozen=True)
class Compare:
    compare_id: str
    entries: tuple[CompareEntry, ...]  # in row order

    @property
    def label(self) -> str:
        first = self.entries[0].job
        return first.prompt or first.name or self.compare_id

    @property
    def finished(self) -> bool:
        return all(entry.job.finished for entry in self.entries)


def compares(jobs: Iterable[JobRecord]) -> dict[str, Compare]:
    """Every compare among ``jobs``, by id, in the order their first job appears."""
    grouped: dict[str, list[CompareEntry]] = {}
    for job in jobs:
        key = parse_key(job.request_key)
        if key is not None:
            grouped.setdefault(key.compare_id, []).append(CompareEntry(key, job))
    return {
        compare_id: Compare(compare_id, tuple(sorted(found, key=lambda e: e.key.index)))
        for compare_id, found in grouped.items()
    }


def figures_text(entry: CompareEntry) -> str:
    """``12.3 s · 20,000 faces · 5.1 GB`` (what is known so far; the state before that)."""
    parts = []
    if entry.seconds is not None:
        parts.append(f"{entry.seconds:.1f} s")
    if entry.faces is not None:
        parts.append(f"{entry.faces:,} faces")
    parts.append(vram_text(entry.peak_vram_mb) if entry.job.manifest else "")
    return " · ".join(p for p in parts if p) or entry.job.state


def vram_text(peak_vram_mb: float | None) -> str:
    """Peak VRAM in words; a CPU run has none to report."""
    if peak_vram_mb is None:
        return "no GPU"
    return f"{peak_vram_mb / 1024:.1f} GB" if peak_vram_mb >= 1024 else f"{peak_vram_mb:.0f} MB"
