"""TripoSR speed and memory: our implementation per stage, against upstream's in the same run.

Full-size architecture with seeded random weights (written in the official ``model.ckpt``
layout and loaded through our loader), one 512x512 RGBA input. Stages: preprocess (cut-out,
framing), encode (image -> triplanes), field (density on the marching-cubes grid), surface
(marching cubes), colour (colour head at the vertices). Each variant runs once to warm up, then
``--repeats`` times; the median per stage and the peak CUDA memory are reported. Random weights
have no object at upstream's density threshold (25), so the threshold is the grid's 99th
percentile (about a real object's face count), measured once and shared by every variant.

Upstream (optional, ``--upstream-dir`` = a checkout of VAST-AI-Research/TripoSR with its
dependencies, transformers 4.x, installed): the same weights load into its TSR, its encode and
field query are timed with the same settings, and its triplanes and density grid are compared
with ours (float32). Its marching cubes needs torchmcubes, so surface and colour are not
compared. Nothing of upstream is part of this repository.

    .venv/backend/bin/python benchmarks/triposr.py --device cuda [--upstream-dir PATH] [--compile]
    .venv/backend/bin/python benchmarks/triposr.py --tiny          # CPU smoke run, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.models.common.background import remove_background  # noqa: E402
from backend.models.common.torch_dtypes import DTYPES  # noqa: E402
from backend.models.triposr import pipeline  # noqa: E402
from backend.models.triposr.config import TripoSRConfig  # noqa: E402
from backend.models.triposr.isosurface import grid_points  # noqa: E402
from backend.models.triposr.loading import load_model, write_model_folder  # noqa: E402
from backend.models.triposr.network import TripoSRNet  # noqa: E402
from backend.models.triposr.testing import random_state, tiny_config  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402

# Random weights give a speckled field with no object at upstream's threshold (25); the level
# at this quantile gives about as many faces as a real object's mesh (~150k at 128^3).
OBJECT_QUANTILE = 0.99
STAGES = ("preprocess", "encode", "field", "surface", "colour")


def input_image(size: int = 512) -> np.ndarray:
    """A shaded two-tone figure on a transparent background: (size, size, 4) uint8."""
    rows, cols = np.mgrid[0:size, 0:size] / size
    body = ((rows - 0.55) / 0.35) ** 2 + ((cols - 0.5) / 0.22) ** 2 < 1
    head = ((rows - 0.2) ** 2 + (cols - 0.5) ** 2) < 0.12**2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = (200 * (1 - rows)).astype(np.uint8)
    rgba[..., 1] = (120 + 100 * cols).astype(np.uint8)
    rgba[..., 2] = 90
    rgba[..., 3] = np.where(body | head, 255, 0)
    return rgba


def condition(image: np.ndarray, foreground_ratio: float) -> np.ndarray:
    """The preprocess stage as a job runs it: the shared cut-out, then TripoSR's framing."""
    return pipeline.condition_image(remove_background(image).rgba, foreground_ratio)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed(results: dict[str, float], stage: str, device: torch.device) -> Iterator[None]:
    sync(device)
    start = time.perf_counter()
    yield
    sync(device)
    results[stage] = time.perf_counter() - start


def run_ours(
    model: TripoSRNet,
    image: np.ndarray,
    args: argparse.Namespace,
    dtype: torch.dtype,
    chunk: int,
    threshold: float | None,
    mc_method: str = "auto",
) -> tuple[dict[str, float], dict]:
    """One generation, stage by stage; returns (seconds per stage, outputs)."""
    device = next(model.parameters()).device
    seconds: dict[str, float] = {}
    with timed(seconds, "preprocess", device):
        conditioning = condition(image, args.foreground_ratio)
    with timed(seconds, "encode", device):
        planes = pipeline.encode(model, conditioning, dtype)
    with timed(seconds, "field", device):
        density = pipeline.density_grid(model, planes, args.mc_resolution, chunk)
    if threshold is None:
        threshold = float(np.quantile(density.cpu().numpy(), OBJECT_QUANTILE))
    with timed(seconds, "surface", device):
        vertices, faces = pipeline.surface(density, threshold, model.config.radius, mc_method)
    with timed(seconds, "colour", device):
        pipeline.make_color_field(model, planes, chunk)(vertices)
    outputs = {
        "planes": planes,
        "density": density.cpu(),
        "threshold": threshold,
        "faces": len(faces),
    }
    return seconds, outputs


def measure(
    name: str, run: Callable[[], tuple[dict[str, float], dict]], repeats: int, device: torch.device
) -> tuple[dict, dict]:
    """Warm-up + ``repeats`` runs: (row with medians and peak memory, last outputs)."""
    run()
    samples: list[dict[str, float]] = []
    peak_mb = None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds, outputs = run()
        samples.append(seconds)
        if device.type == "cuda":
            peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    stages = {s: statistics.median(x[s] for x in samples) for s in samples[0]}
    totals = [sum(x.values()) for x in samples]
    row = {
        "variant": name,
        "seconds": stages,
        "seconds_min": {s: min(x[s] for x in samples) for s in samples[0]},
        "seconds_max": {s: max(x[s] for x in samples) for s in samples[0]},
        "total_s": sum(stages.values()),
        "total_s_min": min(totals),
        "total_s_max": max(totals),
        "repeats": repeats,
        "warmed_up": True,
        "peak_vram_mb": peak_mb,
        "faces": outputs.get("faces"),
    }
    return row, outputs


def upstream_runner(
    upstream_dir: Path,
    config: TripoSRConfig,
    state: dict,
    image: np.ndarray,
    args: argparse.Namespace,
    device: torch.device,
) -> Callable[[], tuple[dict[str, float], dict]]:
    """Upstream TSR with our weights; raises if its code or dependencies are missing."""
    sys.path.insert(0, str(upstream_dir))
    # Imported by upstream but unused by what we time; stand-ins that fail if ever called.
    for optional, names in (
        ("rembg", ("remove", "new_session")),
        ("torchmcubes", ("marching_cubes",)),
    ):
        try:
            __import__(optional)
        except ImportError:
            stand_in = types.ModuleType(optional)
            for attribute in names:
                setattr(stand_in, attribute, _not_installed(optional))
            sys.modules[optional] = stand_in
    import tsr.models.tokenizers.image as upstream_image  # type: ignore[import-not-found]
    from omegaconf import OmegaConf
    from tsr.system import TSR  # type: ignore[import-not-found]

    vit_file = Path(tempfile.mkdtemp()) / "config.json"
    vit_file.write_text(json.dumps(config.vit.to_json()))
    upstream_image.hf_hub_download = lambda repo_id, filename: str(vit_file)  # no network
    model = TSR(OmegaConf.create(config.to_dict()))
    model.load_state_dict(state, strict=True)
    model = model.to(device).eval()
    model.renderer.set_chunk_size(args.chunk_size)

    @torch.no_grad()
    def run() -> tuple[dict[str, float], dict]:
        seconds: dict[str, float] = {}
        with timed(seconds, "preprocess", device):
            conditioning = condition(image, args.foreground_ratio)
        with timed(seconds, "encode", device):
            planes = model([conditioning], device=str(device))
        with timed(seconds, "field", device):
            radius = config.radius
            points = grid_points(args.mc_resolution, radius, device)
            density = model.renderer.query_triplane(model.decoder, points, planes[0])
            density = density["density_act"].reshape((args.mc_resolution,) * 3)
        return seconds, {"planes": planes[0].float(), "density": density.cpu()}

    return run


def _not_installed(module: str) -> Callable[..., None]:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"{module} is not installed")

    return fail


def relative_error(ours: torch.Tensor | np.ndarray, theirs: torch.Tensor | np.ndarray) -> float:
    a = torch.as_tensor(ours).double().cpu()
    b = torch.as_tensor(theirs).double().cpu()
    scale = torch.clamp(b.abs(), min=0.01 * float(b.abs().max()))
    return float(((a - b).abs() / scale).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny config (CPU smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--mc-resolution", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--big-chunk", type=int, default=1 << 18)
    parser.add_argument("--foreground-ratio", type=float, default=0.85)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also try torch.compile")
    parser.add_argument("--upstream-dir", type=Path, help="a VAST-AI-Research/TripoSR checkout")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.tiny:
        args.mc_resolution = min(args.mc_resolution, 32)
        args.repeats = min(args.repeats, 1)
    device = torch.device(args.device)
    config = tiny_config() if args.tiny else TripoSRConfig()
    image = input_image(128 if args.tiny else 512)

    print(
        f"TripoSR benchmark: {'tiny' if args.tiny else 'full-size'} random weights, "
        f"{device}, mc {args.mc_resolution}^3",
        flush=True,
    )
    state = random_state(config, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        write_model_folder(Path(folder), config, state)
        start = time.perf_counter()
        model = load_model(Path(folder), device=device)
        load_s = time.perf_counter() - start

    _, warm = run_ours(model, image, args, torch.float32, args.chunk_size, None)
    threshold = warm["threshold"]
    half = DTYPES[args.dtype] if device.type == "cuda" else torch.float32
    variants: list[tuple[str, torch.dtype, int, str]] = [
        (
            f"ours float32, chunk {args.chunk_size}, mc skimage",
            torch.float32,
            args.chunk_size,
            "skimage",
        ),
        (f"ours {args.dtype}, chunk {args.chunk_size}, mc auto", half, args.chunk_size, "auto"),
        (f"ours {args.dtype}, chunk {args.big_chunk}, mc auto", half, args.big_chunk, "auto"),
    ]
    rows, reference = [], None
    for name, dtype, chunk, mc_method in variants:
        row, outputs = measure(
            name,
            lambda d=dtype, c=chunk, m=mc_method: run_ours(model, image, args, d, c, threshold, m),
            args.repeats,
            device,
        )
        reference = reference or outputs
        if outputs is not reference:
            row["planes_rel_err_vs_fp32"] = relative_error(outputs["planes"], reference["planes"])
            row["density_rel_err_vs_fp32"] = relative_error(
                outputs["density"], reference["density"]
            )
        rows.append(row)
    if args.compile:
        model.backbone = torch.compile(model.backbone)
        model.decoder = torch.compile(model.decoder, dynamic=True)
        row, _ = measure(
            f"ours {args.dtype}, chunk {args.big_chunk}, torch.compile",
            lambda: run_ours(model, image, args, half, args.big_chunk, threshold),
            args.repeats,
            device,
        )
        rows.append(row)

    upstream_note = "not run (no --upstream-dir)"
    if args.upstream_dir is not None:
        try:
            run = upstream_runner(args.upstream_dir, config, state, image, args, device)
            row, outputs = measure(
                f"upstream float32, chunk {args.chunk_size}", run, args.repeats, device
            )
            row["planes_rel_err_vs_ours_fp32"] = relative_error(
                reference["planes"], outputs["planes"]
            )
            row["density_rel_err_vs_ours_fp32"] = relative_error(
                reference["density"], outputs["density"]
            )
            rows.append(row)
            upstream_note = "run"
        except Exception as error:  # report why upstream could not run, keep our numbers
            upstream_note = f"failed: {type(error).__name__}: {error}"
    report = {
        "benchmark": "triposr",
        "tiny": args.tiny,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "mc_resolution": args.mc_resolution,
        "threshold": threshold,
        "load_s": load_s,
        "upstream": upstream_note,
        "rows": rows,
    }
    print_table(report)
    out = args.out or default_out("triposr_tiny" if args.tiny else f"triposr_{device.type}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


def print_table(report: dict) -> None:
    header = f"{'variant':44s}" + "".join(f"{s:>11s}" for s in STAGES)
    header += f"{'total':>9s}{'VRAM MB':>9s}"
    print(header)
    for row in report["rows"]:
        cells = "".join(f"{row['seconds'].get(s, float('nan')) * 1000:9.1f}ms" for s in STAGES)
        vram = f"{row['peak_vram_mb']:9.0f}" if row["peak_vram_mb"] is not None else f"{'-':>9s}"
        print(f"{row['variant']:44s}{cells}{row['total_s']:8.3f}s{vram}")
    print(
        f"upstream: {report['upstream']}; load {report['load_s']:.2f} s; "
        f"threshold {report['threshold']:.4g}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
