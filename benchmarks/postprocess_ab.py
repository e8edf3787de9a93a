"""Benchmark: `dreamcad-backend postprocess` of two source trees, interleaved, on N cores.

On a machine shared with other work, two cpu_postprocess.py runs minutes apart measure the
neighbours' load as much as the code (the same tree gave 6.1 and 7.8 s medians half an hour
apart on 2 shared cores). Here the runs alternate, A B B A A B ..., so both trees meet the same
load: ``--pairs`` runs of each, fresh processes pinned with ``taskset`` to the first N cores
with ``NUMBA_NUM_THREADS=N``, one warm-up process per tree first (numba's on-disk cache).
Reported per tree: median / min / max of wall and CPU time (user + system), stage medians, the
output's quality figures, and whether both trees wrote the same asset bytes.

    .venv/backend/bin/python benchmarks/postprocess_ab.py --before /tmp/old_tree \\
        --out /tmp/ab [--after .] [--threads 2] [--pairs 5]

``--before`` is another checkout of the project (e.g. ``git archive <commit> | tar -x -C DIR``).
Writes ``<out>/postprocess_ab.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpu_postprocess import (  # noqa: E402
    TARGET_FACES,
    TEXTURE_SIZE,
    make_input,
    postprocess_process,
    summary,
)

QUALITY_KEYS = (
    "mean_distance_pct", "max_distance_pct", "watertight", "pieces", "euler", "flipped_faces",
    "uv_utilization", "texture_coverage",
)  # fmt: skip


def run_once(tree: Path, mesh: Path, output: Path, threads: int) -> dict:
    """One fresh postprocess process of ``tree``: wall and CPU seconds, stages, figures."""
    run = postprocess_process(tree, mesh, output, threads)
    manifest = run["manifest"]
    return {
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "stages_s": manifest["timings_s"],
        "quality": {key: manifest["quality"].get(key) for key in QUALITY_KEYS},
        "asset_sha1": hashlib.sha1(output.read_bytes()).hexdigest(),
        "asset_bytes": output.stat().st_size,
    }


def _tree(runs: list[dict]) -> dict:
    stages = {
        name: statistics.median(run["stages_s"][name] for run in runs)
        for name in runs[0]["stages_s"]
    }
    return {
        "wall_s": summary([run["wall_s"] for run in runs]),
        "cpu_s": summary([run["cpu_s"] for run in runs]),
        "stages_s_median": stages,
        "quality": runs[0]["quality"],
        "asset_bytes": runs[0]["asset_bytes"],
        "same_asset_every_run": len({run["asset_sha1"] for run in runs}) == 1,
        "asset_sha1": runs[0]["asset_sha1"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other source tree")
    parser.add_argument("--after", type=Path, default=ROOT, help="this tree by default")
    parser.add_argument("--out", type=Path, required=True, help="folder for input, outputs, JSON")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=464)  # ~800k triangles
    args = parser.parse_args()
    mesh = make_input(args.out, args.resolution)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    outputs = {name: args.out / f"{name}.glb" for name in trees}
    for name, tree in trees.items():  # warm-up: numba cache load (or compile), page cache
        run_once(tree, mesh, outputs[name], args.threads)
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for pair in range(args.pairs):
        order = ("before", "after") if pair % 2 == 0 else ("after", "before")
        for name in order:
            runs[name].append(run_once(trees[name], mesh, outputs[name], args.threads))
    results = {name: _tree(tree_runs) for name, tree_runs in runs.items()}
    for name, result in results.items():
        wall, cpu = result["wall_s"], result["cpu_s"]
        print(f"{name:>6}: wall {wall['median']:.2f} s ({wall['min']:.2f}-{wall['max']:.2f}), "
              f"CPU {cpu['median']:.2f} s ({cpu['min']:.2f}-{cpu['max']:.2f}), "
              f"{result['asset_bytes']} bytes")  # fmt: skip
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_s_median"].items())
        print(f"        stages (median s): {stages}")
    report = {
        "benchmark": "postprocess_ab",
        "conditions": (
            f"fresh `dreamcad-backend postprocess` processes, taskset to {args.threads} cores,"
            f" NUMBA_NUM_THREADS={args.threads}; one warm-up per tree, then {args.pairs} runs"
            " of each, alternating (before after after before ...); median/min/max"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "allowed_cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Without .pyc files every process compiles the project's modules again (~0.1 s
            # on 2 cores): an installed package has them, so runs should too.
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        },
        "trees": {name: str(tree) for name, tree in trees.items()},
        "input": {"file": mesh.name, "resolution": args.resolution},
        "target": {"faces": TARGET_FACES, "texture_size": TEXTURE_SIZE, "format": "glb"},
        "results": results,
        "same_quality": results["before"]["quality"] == results["after"]["quality"],
        "same_asset": results["before"]["asset_sha1"] == results["after"]["asset_sha1"],
    }
    path = args.out / "postprocess_ab.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"same quality figures: {report['same_quality']}; same asset: {report['same_asset']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
