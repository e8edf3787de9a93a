"""Backend settings: where data lives, what address to serve, and the limits an operator sets.

Defaults follow the XDG base-directory spec (``$XDG_DATA_HOME/dreamcad``, else
``~/.local/share/dreamcad``); ``DREAMCAD_DATA_DIR`` or ``--data-dir`` override it. Everything the
backend writes (the SQLite job store, inputs, results, keys) lives under the data directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shared_protocol.framing import Limits

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


def default_data_dir() -> Path:
    if env := os.environ.get("DREAMCAD_DATA_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dreamcad"


@dataclass(frozen=True)
class Retention:
    """Finished jobs are deleted (row and files) past either limit; running ones never."""

    max_age_days: float = 30.0
    max_finished_jobs: int = 500


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    address: str = DEFAULT_ADDRESS
    limits: Limits = field(default_factory=Limits)
    retention: Retention = field(default_factory=Retention)
    curve_dir: Path | None = None  # folder made by `dreamcad-backend keys`
    devices: tuple[str, ...] | None = None  # None: one worker per GPU, or one CPU worker
    # Per device: loaded models past this many MB (by their declared vram_mb) are unloaded, least
    # recently used first (registry.ModelCache). None: no budget, models stay loaded.
    vram_budget_mb: int | None = None
    # One budget per device (``--vram-budget-mb 24000,12000``); empty: ``vram_budget_mb`` for all.
    device_budgets_mb: tuple[int, ...] = ()
    max_queued_jobs: int = 1000
    # Queued jobs one client (owner) may have; past it a submit is refused (client_queue_full).
    max_queued_per_client: int | None = None
    # New jobs are refused (disk_full) once the data directory's disk has this little free.
    min_free_mb: float = 256.0
    # Public key files of clients that see and change every job (with CURVE keys only).
    operator_keys: tuple[Path, ...] = ()
    # Compile the geometry kernels in a background thread at start (see geometry/warmup.py).
    warm_up_kernels: bool = True
    # HOST:PORT to serve Prometheus metrics on (metrics.py); None: no metrics.
    metrics_address: str | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"
