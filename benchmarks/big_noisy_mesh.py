"""Benchmark: the geometry pipeline on a big, noisy, many-piece mesh (what TRELLIS with random
weights hands over: ~5M faces in many pieces), with every stage's time, the untimed rest and
the quality figures.

The input is marching cubes of a smoothed random field inside a ball (seeded): a spongy outer
surface, hundreds of small floating pieces and a closed cavity inside the solid (an inner
shell to remove).
``--resolution`` sets the grid (256 -> a few million faces; 64 for a quick CPU check). The job
is a default one (20k faces, 1024 px, GLB). ``--path torch`` forces the torch stages (on
``--device``: "cpu" runs CPU torch, the same code a CUDA job runs).

    python benchmarks/big_noisy_mesh.py --resolution 160 --path torch --device cpu --runs 1
    python benchmarks/big_noisy_mesh.py --resolution 384 --path torch --device cuda --runs 3 \
        --out /tmp/big_noisy.json --profile /tmp/big_noisy_ops.txt
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.geometry.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from backend.geometry.raw_asset import RawAsset  # noqa: E402
from benchmarks import outputs  # noqa: E402

REPORTED = ("clean", "decimate", "uv", "bake", "export", "preview", "quality")
QUALITY_KEYS = (
    "mean_distance_pct", "max_distance_pct", "pieces", "inner_shells_removed",
    "inner_faces_removed", "texture_coverage", "uv_charts",
)  # fmt: skip


def noisy_field(resolution: int, seed: int = 0) -> np.ndarray:
    """(r, r, r) float32: smoothed white noise, cut off outside a ball (so the surface closes)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((resolution,) * 3).astype(np.float32)
    field = gaussian_filter(noise, sigma=max(resolution / 96, 1.0))
    field /= field.std()
    axis = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
    radius = np.sqrt(axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2)
    # Inside 0.7 the field is mostly solid (bubbles where the noise dips deep: inner shells);
    # between 0.7 and 0.9 it is ragged (pieces, handles); outside 0.9 it is empty.
    bias = np.clip((0.8 - radius) * 12.0, -6.0, 2.2).astype(np.float32)
    # A closed cavity at the centre: a hidden inner shell big enough not to be a floater.
    return np.minimum(field + bias, (radius - 0.3) * 40.0)


def make_input(resolution: int = 256, seed: int = 0) -> RawAsset:
    """The big noisy mesh, with a per-vertex colour from its position."""
    from skimage.measure import marching_cubes

    volume = noisy_field(resolution, seed)
    vertices, faces, _, _ = marching_cubes(volume, 0.0, spacing=(2.0 / (resolution - 1),) * 3)
    vertices = (vertices - 1.0).astype(np.float32)
    colors = np.clip(0.5 + 0.5 * np.sin(vertices * 5.0), 0.0, 1.0).astype(np.float32)
    return RawAsset(vertices, faces.astype(np.int64), vertex_colors=colors, name="noisy")


def _profile(raw: RawAsset, options: PipelineOptions, path: Path) -> None:
    """One run under torch.profiler; the top operators (where the torch stages spend)."""
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available() and options.device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
        run_pipeline(raw, options)
    key = "self_cuda_time_total" if len(activities) == 2 else "self_cpu_time_total"
    path.write_text(prof.key_averages(group_by_input_shape=True).table(sort_by=key,
                                                                       row_limit=40))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--path", default="auto", choices=("auto", "torch", "numba"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target-faces", type=int, default=20_000)
    parser.add_argument("--texture-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, help="default: a new file under benchmarks/runs/")
    parser.add_argument("--profile", type=Path, help="write the top operators of one more "
                        "run under torch.profiler (by device time, else CPU) here")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    raw = make_input(args.resolution)
    made_s = time.perf_counter() - started
    print(f"input: {len(raw.faces)} faces, {len(raw.vertices)} vertices ({made_s:.1f} s)")
    options = PipelineOptions(target_faces=args.target_faces, texture_size=args.texture_size,
                              device=args.device, geometry_path=args.path)  # fmt: skip
    run_pipeline(raw, options)  # warm-up: numba caches, torch kernels, CUDA context
    per_stage: dict[str, list[float]] = {}
    result = None
    for _ in range(args.runs):
        started = time.perf_counter()
        result = run_pipeline(raw, options)
        wall = time.perf_counter() - started
        reported = sum(result.timings_s.get(s, 0.0) for s in REPORTED)
        for stage, seconds in {**result.timings_s, "wall": wall,
                               "unreported": wall - reported}.items():  # fmt: skip
            per_stage.setdefault(stage, []).append(seconds)
    assert result is not None
    report = {
        "input_faces": len(raw.faces),
        "device": args.device,
        "path": args.path,
        "runs": args.runs,
        "stages_median_s": {k: round(statistics.median(v), 4) for k, v in per_stage.items()},
        "quality": {k: result.quality.get(k) for k in QUALITY_KEYS},
        "faces": result.faces,
    }
    print(json.dumps(report, indent=1))
    if args.profile:
        _profile(raw, options, args.profile)
    out = args.out or outputs.default_out("big_noisy_mesh")
    out.write_text(json.dumps(report, indent=1))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
