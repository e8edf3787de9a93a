"""``stats``: per-model figures from the local job store, as a table or as JSON.

Jobs, success rate, p50/p95 seconds per stage, GPU-seconds and failures by error code, over the
jobs that ended in the window ``--since`` gives (default: all the store still holds; finished
jobs are kept 30 days or 500 jobs by default, see settings.Retention). The figures' meaning is
in backend/jobs/stats.py.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime

from backend.cli.options import add_data_dir, settings_from
from backend.jobs.stats import ModelStats, model_stats

_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def add_commands(commands: argparse._SubParsersAction) -> None:
    stats = commands.add_parser("stats", help="per-model jobs, success rate, stage times, GPU-s")
    stats.add_argument(
        "--since",
        type=parse_duration,
        metavar="AGE",
        help="only jobs that ended in the last AGE: 90s, 30m, 12h, 7d, 2w (default: all)",
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_data_dir(stats)
    stats.set_defaults(func=run_stats)


def parse_duration(text: str) -> float:
    """``7d`` -> seconds (units s, m, h, d, w; a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 90s, 30m, 12h, 7d, 2w")
    return float(match[1]) * _UNIT_S[match[2] or "s"]


def run_stats(args: argparse.Namespace) -> int:
    from backend.jobs.store import JobStore

    settings = settings_from(args)
    now = time.time()
    since = now - args.since if args.since is not None else None
    if settings.db_path.is_file():
        store = JobStore(settings.db_path, settings.jobs_dir)
        try:
            figures = model_stats(store.finished_since(since or 0.0))
        finally:
            store.close()
    else:
        figures = []  # no backend ever ran with this data directory
    if args.json:
        print(
            json.dumps(
                {"since": since, "until": now, "models": [f.to_json() for f in figures]}, indent=2
            )
        )
        return 0
    print(table(figures, since))
    return 0


def table(figures: list[ModelStats], since: float | None) -> str:
    window = f"since {_when(since)}" if since is not None else "in the job store"
    total = sum(f.jobs for f in figures)
    lines = [f"{total} job(s) ended {window}"]
    if not figures:
        return lines[0]
    lines.append(
        f"{'model':<22} {'jobs':>5} {'ok':>5} {'failed':>6} {'cancelled':>9} {'success':>8} "
        f"{'GPU-s':>9}"
    )
    for f in figures:
        rate = "-" if f.success_rate is None else f"{f.success_rate:.0%}"
        lines.append(
            f"{f.model:<22} {f.jobs:>5} {f.succeeded:>5} {f.failed:>6} {f.cancelled:>9} "
            f"{rate:>8} {f.gpu_seconds:>9.1f}"
        )
    for f in figures:
        if f.stages:
            lines.append(f"\n{f.model}: seconds per stage (succeeded jobs)")
            lines.append(f"  {'stage':<30} {'n':>5} {'p50':>9} {'p95':>9}")
            for name, stage in f.stages.items():
                lines.append(
                    f"  {name:<30} {stage.count:>5} {stage.p50_s:>9.3f} {stage.p95_s:>9.3f}"
                )
        if f.failures:
            codes = ", ".join(f"{code} {count}" for code, count in sorted(f.failures.items()))
            lines.append(f"{f.model}: failures by code: {codes}")
    return "\n".join(lines)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
