"""Benchmark: `dreamcad-backend postprocess` on the CPU, 800k triangles -> 20k faces + 2048 px
base colour and normal maps, at several core counts.

The figure a user gets: each run is a fresh ``dreamcad-backend postprocess`` process (start-up,
imports, numba's cached kernels, reading the PLY, the pipeline, writing GLB + manifest +
preview), pinned with ``taskset`` to the first N cores with ``NUMBA_NUM_THREADS=N``. One
warm-up process per core count first (it fills numba's on-disk cache if the code changed), then
``--repeats`` timed processes, reported as median / min / max of the wall time and of the
process's CPU time (user + system: on a shared machine wall time stretches, CPU time much less),
with the per-stage medians from the manifest and the output's figures. The input is the
benchmark blob of benchmarks/geometry_pipeline.py (marching cubes at 464^3, 793k triangles, an
analytic vertex colour), made once and kept in ``--out``.

    .venv/backend/bin/python benchmarks/cpu_postprocess.py --out /tmp/cpu_bench \\
        [--threads 1,2] [--repeats 5]
    # on the 16-core GPU box (issue 18: 16 cores at least 3x faster than 2):
    .venv/backend/bin/python benchmarks/cpu_postprocess.py --out /tmp/cpu_bench --threads 2,16

With ``--warm`` it measures what a job in the server pays instead: one process per core count
(pinned the same way) reads the mesh and runs the pipeline and writes the outputs (the same
``postprocess_file`` call as the command) once to warm up, then ``--repeats`` times, so numba's
kernels are loaded and start-up is paid once, as in the long-lived service.

Writes ``<out>/cpu_postprocess.json`` (``cpu_postprocess_warm.json`` with ``--warm``); nothing
under benchmarks/results unless ``--out`` says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_FACES = 20_000
TEXTURE_SIZE = 2048


def make_input(out: Path, resolution: int) -> Path:
    """The blob as a binary PLY with vertex colours, made once per resolution."""
    path = out / f"blob_{resolution}.ply"
    if path.exists():
        return path
    import numpy as np
    import trimesh

    from benchmarks.blob_mesh import make_input as blob

    raw = blob(resolution)
    colors = (np.clip(raw.vertex_colors, 0.0, 1.0) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(raw.vertices, raw.faces, vertex_colors=colors, process=False)
    out.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


def cores(count: int) -> str:
    """The first ``count`` cores this process may use, as a taskset list."""
    allowed = sorted(os.sched_getaffinity(0))
    if count > len(allowed):
        raise SystemExit(f"asked for {count} cores, this machine lets us use {len(allowed)}")
    return ",".join(str(core) for core in allowed[:count])


def postprocess_process(tree: Path, mesh: Path, output: Path, threads: int) -> dict:
    """One fresh ``postprocess`` process of the source ``tree`` pinned to ``threads`` cores:
    wall and CPU seconds and its manifest."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    command = [
        "taskset", "-c", cores(threads), sys.executable, "-m", "backend.cli", "postprocess",
        str(mesh), "-o", str(output), "--faces", str(TARGET_FACES),
        "--texture-size", str(TEXTURE_SIZE),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=tree, env=env, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "manifest": json.loads(output.with_name(output.name + ".json").read_text()),
    }


def warm_worker(mesh: Path, output: Path, repeats: int) -> None:
    """In a pinned child: ``repeats + 1`` postprocess_file calls in this process (the first a
    warm-up), each timed; prints one JSON line per timed call."""
    from backend.cli import single_threaded_blas

    single_threaded_blas()  # as the server's process does, before numpy loads
    from backend.geometry.pipeline import PipelineOptions
    from backend.geometry.postprocess import postprocess_file

    options = PipelineOptions(target_faces=TARGET_FACES, texture_size=TEXTURE_SIZE)
    for index in range(repeats + 1):
        cpu_before, started = time.process_time(), time.perf_counter()
        result = postprocess_file(mesh, output, options)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
        if index:  # the first call loaded the kernels
            print(json.dumps({"wall_s": wall, "cpu_s": cpu, "manifest": result.manifest(),
                              "asset_bytes": len(result.asset)}), flush=True)  # fmt: skip


def warm_runs(mesh: Path, out: Path, threads: int, repeats: int) -> list[dict]:
    """``repeats`` warm calls in one process pinned to ``threads`` cores."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    command = [
        "taskset", "-c", cores(threads), sys.executable, str(Path(__file__).resolve()),
        "--warm-worker", "--out", str(out), "--mesh", str(mesh), "--repeats", str(repeats),
    ]  # fmt: skip
    lines = subprocess.run(command, check=True, cwd=ROOT, env=env, capture_output=True,
                           text=True).stdout.splitlines()  # fmt: skip
    runs = [json.loads(line) for line in lines if line.startswith("{")]
    return [
        {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "stages_s": run["manifest"]["timings_s"],
         "faces": run["manifest"]["faces"], "quality": run["manifest"]["quality"],
         "asset_bytes": run["asset_bytes"]}
        for run in runs
    ]  # fmt: skip


def run_once(mesh: Path, out: Path, threads: int) -> dict:
    """One fresh postprocess process: wall and CPU seconds, stage times, output figures."""
    output = out / f"out_{threads}.glb"
    run = postprocess_process(ROOT, mesh, output, threads)
    manifest = run["manifest"]
    return {
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "stages_s": manifest["timings_s"],
        "faces": manifest["faces"],
        "quality": manifest["quality"],
        "asset_bytes": output.stat().st_size,
    }


def summary(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def measure(mesh: Path, out: Path, threads: int, repeats: int, warm: bool = False) -> dict:
    started = time.perf_counter()
    run_once(mesh, out, threads)  # warm-up: numba cache load (or compile), page cache
    warmup_s = time.perf_counter() - started
    if warm:
        runs = warm_runs(mesh, out, threads, repeats)
    else:
        runs = [run_once(mesh, out, threads) for _ in range(repeats)]
    stages = {
        name: statistics.median(run["stages_s"][name] for run in runs)
        for name in runs[0]["stages_s"]
    }
    return {
        "threads": threads,
        "cores": cores(threads),
        "warmup_s": warmup_s,
        "wall_s": summary([run["wall_s"] for run in runs]),
        "cpu_s": summary([run["cpu_s"] for run in runs]),
        "stages_s_median": stages,
        "faces": runs[0]["faces"],
        "quality": runs[0]["quality"],
        # Every run must make the same asset: the decimator's slabs and the splat's bands are
        # fixed by the input, not by the core count.
        "same_asset_every_run": len({run["asset_bytes"] for run in runs}) == 1,
        "asset_bytes": runs[0]["asset_bytes"],
    }


def _commit() -> str:
    """The code measured: HEAD, with "+changes" when the work tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+changes" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for input, outputs, JSON")
    parser.add_argument("--threads", default="1,2", help="comma-separated core counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=464)  # ~800k triangles
    parser.add_argument("--warm", action="store_true", help="repeat the job in one process")
    parser.add_argument("--warm-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mesh", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warm_worker:
        warm_worker(args.mesh, args.out / f"warm_{os.getpid()}.glb", args.repeats)
        return
    if args.repeats < 5:
        print("note: fewer than 5 repeats; the rules of benchmarks/report.py ask for 5")
    mesh = make_input(args.out, args.resolution)
    counts = [int(part) for part in args.threads.split(",")]
    results = []
    for count in counts:
        result = measure(mesh, args.out, count, args.repeats, args.warm)
        results.append(result)
        wall, cpu = result["wall_s"], result["cpu_s"]
        print(
            f"{count:>3} cores: wall {wall['median']:.2f} s ({wall['min']:.2f}-{wall['max']:.2f})"
            f", CPU {cpu['median']:.2f} s ({cpu['min']:.2f}-{cpu['max']:.2f}), "
            f"warm-up {result['warmup_s']:.1f} s, {result['faces']} faces, mean error "
            f"{result['quality'].get('mean_distance_pct', float('nan')):.4f} % diag"
        )
        stages = ", ".join(f"{k} {v:.2f}" for k, v in result["stages_s_median"].items())
        print(f"      stages (median s): {stages}")
    speedups = {}
    for result in results[1:]:
        key = f"{results[0]['threads']}->{result['threads']}"
        speedups[key] = results[0]["wall_s"]["median"] / result["wall_s"]["median"]
        print(f"speed-up {key} cores: {speedups[key]:.2f}x (median wall)")
    report = {
        "benchmark": "cpu_postprocess",
        "mode": "warm (in one process)" if args.warm else "fresh process per run",
        "conditions": (
            "one process per core count, taskset to the first N cores, NUMBA_NUM_THREADS=N, "
            "postprocess_file (read, pipeline, write) repeated in it after a warm-up call, as a "
            "job in the server; median/min/max of the repeats"
            if args.warm
            else "fresh `dreamcad-backend postprocess` process per run, taskset to the first N "
            "cores, NUMBA_NUM_THREADS=N; one warm-up process, then median/min/max of the repeats"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "allowed_cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "commit": _commit(),
        "input": {"file": mesh.name, "resolution": args.resolution},
        "target": {"faces": TARGET_FACES, "texture_size": TEXTURE_SIZE, "format": "glb"},
        "repeats": args.repeats,
        "results": results,
        "speedup_median_wall": speedups,
        "agreement": {
            "same_faces": len({r["faces"] for r in results}) == 1,
            "same_asset_bytes": len({r["asset_bytes"] for r in results}) == 1,
        },
    }
    path = args.out / ("cpu_postprocess_warm.json" if args.warm else "cpu_postprocess.json")
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
