"""Benchmark: the geometry pipeline's torch path (a CUDA job) against its numba path (CPU).

The input is benchmarks/geometry_pipeline.py's blobby marching-cubes mesh (464^3: ~800k
triangles, analytic vertex colours); the job is the issue's target: 20k faces, 2048 px base
colour + normal maps, GLB. Each path runs once to warm up (CUDA context, kernels, numba
caches), then ``--runs`` times (at least 5); every stage is reported as median, min and max.
"mesh stages" is clean + decimate + uv + bake, the part the issue's 0.3 s target covers;
"pipeline" adds the GLB and preview writing. Quality figures (surface distance in % of the
diagonal, watertight, pieces, flipped UVs) come from one extra, untimed run per path on the
same mesh, and sit beside the times, with the number of distinct GLBs the timed runs made (the
same input must make the same asset: 1). ``--tiny`` runs a small mesh at 256 px, so the script can
be checked on a CPU-only machine (with ``--device cpu`` the torch path runs on CPU torch).

    python benchmarks/geometry_gpu.py --device cuda --runs 5 --out /tmp/geometry_gpu.json
    python benchmarks/geometry_gpu.py --device cpu --tiny --runs 5 --out /tmp/tiny.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.geometry.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from backend.geometry.raw_asset import RawAsset  # noqa: E402

MESH_STAGES = ("clean", "decimate", "uv", "bake")
QUALITY_KEYS = (
    "mean_distance_pct", "max_distance_pct", "watertight", "pieces", "euler",
    "non_manifold_edges", "flipped_faces", "uv_utilization", "texture_coverage",
)  # fmt: skip
TARGET_S = 0.3  # the mesh-stage target on an H100-class GPU
TARGET_MEAN_PCT = 0.012  # and its surface error bound, % of the diagonal


def make_input(resolution: int) -> RawAsset:
    """geometry_pipeline.py's benchmark mesh (imported from there: one definition)."""
    from benchmarks.blob_mesh import make_input as blob

    return blob(resolution)


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(samples), 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
    }


def run_path(raw: RawAsset, path: str, device: str, runs: int, faces: int, size: int) -> dict:
    """Warm-up, ``runs`` timed runs and one quality run of one path; per-stage summaries."""

    def options(measure: bool) -> PipelineOptions:
        return PipelineOptions(target_faces=faces, texture_size=size, device=device,
                               geometry_path=path, measure_quality=measure)  # fmt: skip

    # The first run compiles (numba's cache, inductor's graphs: ~1-2 min on a fresh machine).
    print(f"{path} on {device}: warm-up (compiles on a fresh machine) ...", flush=True)
    started = time.perf_counter()
    run_pipeline(raw, options(False))
    print(f"  warm-up {time.perf_counter() - started:.1f} s; {runs} timed runs ...", flush=True)
    per_stage: dict[str, list[float]] = {}
    digests: list[str] = []
    for _ in range(runs):
        started = time.perf_counter()
        result = run_pipeline(raw, options(False))
        wall = time.perf_counter() - started
        digests.append(hashlib.sha256(result.asset).hexdigest()[:16])
        for stage, seconds in result.timings_s.items():
            per_stage.setdefault(stage, []).append(seconds)
        per_stage.setdefault("mesh stages", []).append(
            sum(result.timings_s[stage] for stage in MESH_STAGES)
        )
        per_stage.setdefault("pipeline", []).append(wall)
    checked = run_pipeline(raw, options(True))
    return {
        "path": path,
        "device": device,
        "faces": checked.faces,
        "torch_stages": checked.quality.get("torch_stages"),
        "stages": {stage: _summary(samples) for stage, samples in per_stage.items()},
        # The same input must make the same asset: distinct GLBs over the timed runs (1 is right).
        "distinct_assets": len(set(digests)),
        "asset_sha256_16": sorted(set(digests)),
        "quality": {key: checked.quality.get(key) for key in QUALITY_KEYS},
    }


def print_table(report: dict) -> None:
    paths = report["paths"]
    stages = list(dict.fromkeys(s for p in paths for s in p["stages"]))
    header = "| stage | " + " | ".join(f"{p['path']} on {p['device']} median (min-max) s"
                                        for p in paths) + " |"  # fmt: skip
    print(header)
    print("|" + " --- |" * (len(paths) + 1))
    for stage in stages:
        cells = []
        for p in paths:
            s = p["stages"].get(stage)
            cells.append(f"{s['median_s']:.4f} ({s['min_s']:.4f}-{s['max_s']:.4f})" if s else "-")
        print(f"| {stage} | " + " | ".join(cells) + " |")
    for key in ("faces", "distinct_assets", *QUALITY_KEYS):
        values = [p[key] if key in p else p["quality"][key] for p in paths]
        print(f"| {key} | " + " | ".join(str(v) for v in values) + " |")
    if len(paths) == 2:
        ratio = (paths[1]["stages"]["mesh stages"]["median_s"]
                 / max(paths[0]["stages"]["mesh stages"]["median_s"], 1e-9))  # fmt: skip
        print(f"\nmesh stages: {paths[0]['path']} is {ratio:.2f}x faster than {paths[1]['path']}"
              " (medians, same mesh, same options)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=464)  # ~800k triangles
    parser.add_argument("--target-faces", type=int, default=20_000)
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--tiny", action="store_true", help="a small mesh at 256 px (CPU check)")
    parser.add_argument("--skip-cpu", action="store_true", help="no numba-path comparison")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path, metavar="TEXT",
                        help="one more torch-path run under cProfile, its table written here")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5 (medians of fewer are not reported)")
    if args.tiny:
        args.resolution, args.target_faces, args.texture_size = 56, 2000, 256
    import torch

    raw = make_input(args.resolution)
    report: dict[str, Any] = {
        "input_faces": len(raw.faces),
        "target_faces": args.target_faces,
        "texture_size": args.texture_size,
        "runs": args.runs,
        "warm_up": 1,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "targets": {"mesh_stages_s": TARGET_S, "mean_distance_pct": TARGET_MEAN_PCT},
        "paths": [],
    }
    sizes = (args.target_faces, args.texture_size)
    report["paths"].append(run_path(raw, "torch", args.device, args.runs, *sizes))
    if args.profile:  # warm by now: where one more torch-path run's host time goes
        from benchmarks.common import host_profile

        host_profile(lambda: run_pipeline(raw, PipelineOptions(
            target_faces=args.target_faces, texture_size=args.texture_size, device=args.device,
            geometry_path="torch")), args.profile)  # fmt: skip
    if not args.skip_cpu:
        report["paths"].append(run_path(raw, "numba", "cpu", args.runs, *sizes))
    print(f"input: {len(raw.faces)} triangles -> {args.target_faces} faces, "
          f"{args.texture_size} px maps; {args.runs} runs after 1 warm-up")  # fmt: skip
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
