"""Benchmark: inner-shell removal's views drawn by numba (inner_shells.py) and by torch
(torch_inner_shells.py) on big_noisy_mesh.py's mesh at a few sizes: both answers (they must be
equal), each path's time, and the setup before the drawing (patches, culling, vertex
bookkeeping) on the CPU (numba) and in torch.

The mesh is cleaned by clean.py as a job would (``--floater-fraction 0`` keeps every small
piece as its own patch: many more patches, many hidden). Each path runs once to warm up (numba
caches, torch kernels, the CUDA context), then ``--runs`` times; the median is reported.

    python benchmarks/inner_shells_paths.py --resolutions 64 96 128 --device cpu
    python benchmarks/inner_shells_paths.py --resolutions 256 384 --device cuda --runs 3 \
        --profile /tmp/inner_shells_ops
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.geometry import clean, inner_shells, tolerances, torch_inner_shells  # noqa: E402
from benchmarks import outputs  # noqa: E402
from benchmarks.big_noisy_mesh import make_input  # noqa: E402


def _timed(call: Callable[[], Any], runs: int) -> tuple[Any, float]:
    """``call``'s answer and its median time over ``runs`` runs after one warm-up."""
    answer = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
    return answer, statistics.median(times)


def _torch_setup(vertices: np.ndarray, faces: np.ndarray, pairs: Any, device: str) -> Any:
    """torch_inner_shells.patch_setup on ``device`` from host arrays, waited for."""
    import torch

    setup = torch_inner_shells.patch_setup(vertices, faces, torch.as_tensor(faces, device=device),
                                           pairs)  # fmt: skip
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return setup


def _peak_memory(device: str, call: Callable[[], Any]) -> float | None:
    """GiB of device memory ``call`` took at its peak (None off CUDA)."""
    if not device.startswith("cuda"):
        return None
    import torch

    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    call()
    return round((torch.cuda.max_memory_allocated(device) - base) / 2**30, 3)


def _profile(path: Path, device: str, call: Callable[[], Any]) -> None:
    """The top operators of one ``call`` under torch.profiler (by device time on CUDA)."""
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        call()
    key = "self_cuda_time_total" if len(activities) == 2 else "self_cpu_time_total"
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=30))


def measure(resolution: int, device: str, pixels: int, runs: int, floater_fraction: float,
            profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One size: the mesh, the shared setup's time, each path's time and answer."""
    raw = make_input(resolution)
    cleaned = clean.clean_mesh(raw.vertices, raw.faces, floater_fraction=floater_fraction)
    vertices, faces, pairs = cleaned.vertices, cleaned.faces, cleaned.face_pairs
    setup, setup_s = _timed(lambda: inner_shells.patch_setup(vertices, faces, pairs), runs)
    started = time.perf_counter()
    inner_shells.surface_patches(faces, len(vertices), pairs)
    patches_s = time.perf_counter() - started
    _, torch_setup_s = _timed(lambda: _torch_setup(vertices, faces, pairs, device), runs)
    numba, numba_s = _timed(
        lambda: inner_shells.find_inner_shells(vertices, faces, pixels=pixels, pairs=pairs), runs
    )
    torch, torch_s = _timed(
        lambda: torch_inner_shells.find_inner_shells(vertices, faces, pixels=pixels,
                                                     pairs=pairs, device=device), runs,
    )  # fmt: skip
    peak = _peak_memory(device, lambda: torch_inner_shells.find_inner_shells(
        vertices, faces, pixels=pixels, pairs=pairs, device=device))  # fmt: skip
    if profile is not None:
        _profile(profile.with_suffix(f".{resolution}.txt"), device, lambda: (
            torch_inner_shells.find_inner_shells(vertices, faces, pixels=pixels, pairs=pairs,
                                                 device=device)))  # fmt: skip
    return {
        "torch_peak_gib": peak,
        "resolution": resolution, "faces": len(faces), "vertices": len(vertices),
        "patches": setup.count, "hidden_patches": numba.hidden_patches,
        "hidden_faces": numba.hidden_faces, "same_answer": bool(
            np.array_equal(numba.hidden, torch.hidden)
            and numba.hidden_patches == torch.hidden_patches),
        "views_drawn": {"numba": numba.views_drawn, "torch": torch.views_drawn},
        "setup_s": round(setup_s, 4), "surface_patches_s": round(patches_s, 4),
        "torch_setup_s": round(torch_setup_s, 4),
        "numba_s": round(numba_s, 4), "torch_s": round(torch_s, 4),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--device", default="cpu", help="torch device of the torch path")
    parser.add_argument("--pixels", type=int, default=tolerances.VISIBILITY_PIXELS)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--floater-fraction", type=float, default=tolerances.FLOATER_FRACTION)
    parser.add_argument("--out", type=Path, help="default: a new file under benchmarks/runs/")
    parser.add_argument("--profile", type=Path, help="write the torch path's top operators of "
                        "one more run per size to PROFILE.<resolution>.txt")  # fmt: skip
    args = parser.parse_args(argv)
    rows = []
    for resolution in args.resolutions:
        rows.append(measure(resolution, args.device, args.pixels, args.runs,
                            args.floater_fraction, args.profile))  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    report = {"device": args.device, "pixels": args.pixels, "runs": args.runs,
              "floater_fraction": args.floater_fraction, "sizes": rows}  # fmt: skip
    out = args.out or outputs.default_out("inner_shells_paths")
    out.write_text(json.dumps(report, indent=1))
    print(f"written to {out}")
    return 0 if all(row["same_answer"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
