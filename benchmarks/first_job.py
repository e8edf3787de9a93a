"""Benchmark: a fresh backend process's first GPU job, with and without the start-up warm-up.

The geometry pipeline's torch stages are built (``torch.compile``, Triton) on their first call
in each process, so the first job after ``serve`` starts used to pay for them. Each run here is
a fresh process that imports the backend, starts CUDA, runs ``warm_up(devices=[device])`` as
``serve`` does at start (mode ``warm``) or not (mode ``none``), then runs two jobs on the
~800k-triangle blob (20k faces, 2048 px maps). Mode ``during`` is what ``serve`` really meets:
the warm-up starts on a background thread and the first job arrives at once, so the job shares
the process with the warm-up (which gives way to it, job_priority.py); the second job runs after
the warm-up ended. It reports the first job's wall time, the second (warm) job's, the dynamo
frames compiled meanwhile (process-wide: in ``during`` the warm-up's count too; builds that
torch_ahead.py loads or makes count none, its log lines are in each sample), and each GLB's
digest: the same input must make the same asset in every process and mode.

Inductor's and Triton's disk caches live in a folder of this run. One untimed process fills
them first, which models a restart. ``--fresh-caches`` gives every process empty ones, which
models the first start after an install. Modes alternate (none, warm, none, ...). Every run is
one sample of a fresh process; at least 5 per mode are needed before a figure is claimed.
With ``--device cpu`` the torch path is forced and compiled (``DREAMCAD_GEOMETRY_PATH=torch``,
``DREAMCAD_COMPILE=1``), and ``--tiny`` uses a small mesh, so the script can be checked
without a GPU.

    python benchmarks/first_job.py --device cuda --runs 5 --out /tmp/first_job.json
    python benchmarks/first_job.py --device cuda --runs 5 --modes none,during --out /tmp/f.json
    python benchmarks/first_job.py --device cpu --tiny --runs 1 --out /tmp/first_job_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import spread  # noqa: E402

MODES = ("none", "warm", "during")
MESH_STAGES = ("clean", "decimate", "uv", "bake")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process: (warm-up,) two jobs; what a user of a just-started backend waits."""
    began = time.perf_counter()
    import hashlib
    import threading

    import numpy as np
    import torch
    from torch._dynamo.utils import counters

    from backend import job_priority
    from backend.geometry.pipeline import PipelineOptions, run_pipeline
    from backend.geometry.raw_asset import RawAsset
    from backend.geometry.warmup import warm_up

    data = np.load(args.input)
    raw = RawAsset(data["vertices"], data["faces"], vertex_colors=data["colors"], name="blob")
    if args.device.startswith("cuda"):
        torch.zeros(1, device=args.device)
        torch.cuda.synchronize(args.device)
    out: dict[str, Any] = {
        "start_s": round(time.perf_counter() - began, 2),
        "gpu": (
            torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else None
        ),
    }
    parts: dict[str, float] = {}
    totals: list[float] = []

    def warm_up_as_serve_does() -> None:  # server.py's _warm_up_kernels
        with job_priority.background():
            totals.append(warm_up(lambda label, s: parts.__setitem__(label, s),
                                  devices=[args.device]))  # fmt: skip

    warming = threading.Thread(target=warm_up_as_serve_does, name="warm-up")
    if args.mode == "warm":
        warming.start()
        warming.join()
        out["warm_up_frames"] = counters["frames"].get("ok", 0)
    elif args.mode == "during":
        warming.start()
    options = PipelineOptions(target_faces=args.target_faces, texture_size=args.texture_size,
                              device=args.device)  # fmt: skip
    out["jobs"] = []
    for index in range(2):
        if index == 1 and warming.is_alive():
            warming.join()  # the second job measures a warmed process in every mode
        frames = counters["frames"].get("ok", 0)
        started = time.perf_counter()
        with job_priority.job_running():  # as a worker runs it
            result = run_pipeline(raw, options)
        out["jobs"].append({
            "wall_s": round(time.perf_counter() - started, 4),
            "mesh_stages_s": round(sum(result.timings_s[s] for s in MESH_STAGES), 4),
            "frames_compiled": counters["frames"].get("ok", 0) - frames,
            "asset_sha256_16": hashlib.sha256(result.asset).hexdigest()[:16],
        })  # fmt: skip
    if totals:
        out["warm_up_s"] = round(totals[0], 2)
        out["device_warm_up_s"] = round(
            sum(s for label, s in parts.items() if label.endswith(f" on {args.device}")), 2
        )
    return out


def run_child(args: argparse.Namespace, mode: str, input_path: Path, caches: Path) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"),
           "TRITON_CACHE_DIR": str(caches / "triton"), "PYTHONUNBUFFERED": "1"}  # fmt: skip
    if not args.device.startswith("cuda"):  # the CPU check: the torch path, compiled
        env.update({"DREAMCAD_GEOMETRY_PATH": "torch", "DREAMCAD_COMPILE": "1"})
    command = [sys.executable, __file__, "--child", "--mode", mode, "--device", args.device,
               "--input", str(input_path), "--target-faces", str(args.target_faces),
               "--texture-size", str(args.texture_size), "--out", os.devnull]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    sample = json.loads(done.stdout.strip().splitlines()[-1])
    # what torch_ahead said: builds loaded, made, or why none could be made on this torch
    sample["ahead_log"] = [line[:400] for line in done.stderr.splitlines() if "torch_ahead" in line]
    return sample


def summarise(samples: list[dict]) -> dict[str, Any]:
    first = [s["jobs"][0] for s in samples]
    second = [s["jobs"][1] for s in samples]
    out = {
        "start_s": spread([s["start_s"] for s in samples]),
        "first_job_s": spread([j["wall_s"] for j in first]),
        "first_job_frames_compiled": spread([j["frames_compiled"] for j in first]),
        "second_job_s": spread([j["wall_s"] for j in second]),
        "second_job_mesh_stages_s": spread([j["mesh_stages_s"] for j in second]),
        "second_job_frames_compiled": spread([j["frames_compiled"] for j in second]),
    }
    if "warm_up_s" in samples[0]:
        out["warm_up_s"] = spread([s["warm_up_s"] for s in samples])
        out["device_warm_up_s"] = spread([s["device_warm_up_s"] for s in samples])
    return out


def print_table(report: dict) -> None:
    print(f"\n{report['device']}: first jobs of fresh processes, {report['runs']} per mode,"
          f" {report['caches']} caches; median (min-max)")  # fmt: skip
    rows = ("warm_up_s", "device_warm_up_s", "first_job_s", "first_job_frames_compiled",
            "second_job_s", "second_job_frames_compiled")  # fmt: skip
    modes = list(report["modes"])
    print("| figure | " + " | ".join(modes) + " |\n" + "|---" * (len(modes) + 1) + "|")
    for row in rows:
        cells = []
        for mode in modes:
            s = report["modes"][mode].get(row)
            cells.append(f"{s['median']:.4g} ({s['min']:.4g}-{s['max']:.4g})" if s else "-")
        print(f"| {row} | " + " | ".join(cells) + " |")
    print(f"| distinct GLBs over all jobs | {report['distinct_assets']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per mode")
    parser.add_argument("--resolution", type=int, default=464)  # ~800k triangles
    parser.add_argument("--target-faces", type=int, default=20_000)
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--tiny", action="store_true", help="a small mesh at 256 px (CPU check)")
    parser.add_argument(
        "--fresh-caches",
        action="store_true",
        help="empty compile caches in every process (a first start)",
    )
    parser.add_argument("--caches", type=Path,
                        help="fill and share the compile caches in this folder (default: one of"
                             " this run)")  # fmt: skip
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"which of {', '.join(MODES)} to run (comma-separated)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
        for noisy in ("torch", "numba", "filelock", "triton"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        print(json.dumps(child(args)))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: choose among {', '.join(MODES)}, got {args.modes!r}")
    if args.tiny:
        args.resolution, args.target_faces, args.texture_size = 56, 2000, 256
    import numpy as np

    from benchmarks.blob_mesh import make_input

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        raw = make_input(args.resolution)
        input_path = scratch / "input.npz"
        np.savez(input_path, vertices=raw.vertices, faces=raw.faces, colors=raw.vertex_colors)
        shared = args.caches or scratch / "caches"
        if not args.fresh_caches:
            print("filling the compile caches (one untimed process) ...", flush=True)
            run_child(args, "warm", input_path, shared)
        samples: dict[str, list[dict]] = {mode: [] for mode in modes}
        for index in range(args.runs):
            for mode in modes:
                caches = scratch / f"fresh-{mode}-{index}" if args.fresh_caches else shared
                sample = run_child(args, mode, input_path, caches)
                samples[mode].append(sample)
                print(f"run {index} {mode}: first job {sample['jobs'][0]['wall_s']:.2f} s,"
                      f" warm-up {sample.get('warm_up_s', '-')} s", flush=True)  # fmt: skip
    digests = {j["asset_sha256_16"] for runs in samples.values() for s in runs for j in s["jobs"]}
    report: dict[str, Any] = {
        "benchmark": "first_job",
        "device": args.device,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpu": samples[modes[0]][0]["gpu"] if args.runs else None,
        },
        "input_faces": len(raw.faces),
        "target_faces": args.target_faces,
        "texture_size": args.texture_size,
        "runs": args.runs,
        "meets_repeat_rule": args.runs >= 5,
        "caches": "fresh" if args.fresh_caches else "filled (a restart)",
        "modes": {mode: summarise(runs) for mode, runs in samples.items()},
        "distinct_assets": len(digests),
        "samples": samples,
    }
    print_table(report)
    if not report["meets_repeat_rule"]:
        print("fewer than 5 runs per mode: a check, not a figure to claim")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
