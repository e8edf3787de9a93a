"""TripoSR speed and memory: our implementation per stage, against upstream's in the same run.

Full-size architecture with seeded random weights (written in the official ``model.ckpt``
layout and loaded through our loader), one 512x512 RGBA input. Stages: preprocess (cut-out,
framing), encode (image -> triplanes), field (density on the marching-cubes grid), surface
(marching cubes), colour (colour head at the vertices). Each variant runs once to warm up, then
``--repeats`` times; the median per stage and the peak CUDA memory are reported. Random weights
have no object at upstream's density threshold (25), so the threshold is the grid's 99th
percentile (about a real object's face count), measured once and shared by every variant.

Variants: ours at upstream's settings (fp32, 8k-point chunks: the reference), at the product's
defaults (fp32, 262k-point chunks), and in ``--dtype`` (bf16) at 262k. Beside each time, its
agreement with the reference: max / mean relative difference of the density grid, face count,
and the surface distance between the two meshes (mean / max nearest-vertex distance, % of the
bounding-box diagonal) -- what decides whether a faster setting may be the product's default.

Upstream (optional, ``--upstream-dir`` = a checkout of VAST-AI-Research/TripoSR with its
dependencies, transformers 4.x, installed): the same weights load into its TSR, its encode and
field query are timed with the same settings, and its triplanes and density grid are compared
with ours. Upstream runs at the same settings as each of our variants (fp32 at 8k and 262k
chunks; the bf16 variant's encoder under the same autocast), and each pair is timed
interleaved: both warmed up, then ``--repeats`` rounds of ours and upstream in alternating
order, over the same stages (preprocess, encode, field), so that the machine's drifts fall on
both sides (timed back to back, identical preprocessing code differed by 30 % between the two
blocks on an H100 and an H200). ``comparisons`` in the report pairs them (median with min/max,
and their density agreement), and one pair "defaults vs defaults" (our product
defaults against upstream's run.py defaults) labelled so, never the claimed ratio. Upstream's
own transformer picks torch's SDPA attention (its best); its ViT uses whatever the installed
transformers gives (recorded). Its marching cubes needs torchmcubes, so surface and colour are
not compared. Nothing of upstream is part of this repository.

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
    upto_field: bool = False,
) -> tuple[dict[str, float], dict]:
    """One generation, stage by stage; returns (seconds per stage, outputs).

    ``upto_field`` stops after the field: the stages upstream's side runs, for the pairs."""
    device = next(model.parameters()).device
    seconds: dict[str, float] = {}
    with timed(seconds, "preprocess", device):
        conditioning = condition(image, args.foreground_ratio)
    with timed(seconds, "encode", device):
        planes = pipeline.encode(model, conditioning, dtype)
    with timed(seconds, "field", device):
        density = pipeline.density_grid(model, planes, args.mc_resolution, chunk)
    if upto_field:
        return seconds, {"planes": planes, "density": density.cpu()}
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
        "vertices": vertices,
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
    row = summarise(name, samples, repeats) | {
        "peak_vram_mb": peak_mb,
        "faces": outputs.get("faces"),
    }
    return row, outputs


def summarise(name: str, samples: list[dict[str, float]], repeats: int) -> dict:
    """A row from per-repeat stage seconds: medians, min, max (no memory: pairs share it)."""
    stages = {s: statistics.median(x[s] for x in samples) for s in samples[0]}
    totals = [sum(x.values()) for x in samples]
    return {
        "variant": name,
        "seconds": stages,
        "seconds_min": {s: min(x[s] for x in samples) for s in samples[0]},
        "seconds_max": {s: max(x[s] for x in samples) for s in samples[0]},
        "total_s": sum(stages.values()),
        "total_s_min": min(totals),
        "total_s_max": max(totals),
        "repeats": repeats,
        "warmed_up": True,
        "peak_vram_mb": None,
        "faces": None,
    }


def measure_pair(
    names: tuple[str, str],
    runs: tuple[Callable[[], tuple[dict[str, float], dict]], ...],
    repeats: int,
) -> tuple[list[dict], list[dict]]:
    """Ours and upstream interleaved: both warmed up, then each repeat runs both, the order
    alternating (ours first on even repeats), so drifts of clocks, caches and other load on the
    machine fall on both sides alike. Returns (two rows, two last outputs)."""
    for run in runs:
        run()
    samples: list[list[dict[str, float]]] = [[], []]
    outputs: list[dict] = [{}, {}]
    for repeat in range(repeats):
        order = (0, 1) if repeat % 2 == 0 else (1, 0)
        for side in order:
            seconds, outputs[side] = runs[side]()
            samples[side].append(seconds)
    rows = [summarise(names[side], samples[side], repeats) for side in (0, 1)]
    for row in rows:
        row["interleaved"] = True
    return rows, outputs


def upstream_model(
    upstream_dir: Path, config: TripoSRConfig, state: dict, device: torch.device
) -> torch.nn.Module:
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
    return model.to(device).eval()


def upstream_runner(
    model: torch.nn.Module,
    image: np.ndarray,
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    chunk: int,
    radius: float,
) -> Callable[[], tuple[dict[str, float], dict]]:
    """One upstream generation at our variant's settings: encoder under the same autocast,
    field in float32 with ``chunk`` points per call (its renderer's chunk size)."""
    @torch.no_grad()
    def run() -> tuple[dict[str, float], dict]:
        model.renderer.set_chunk_size(chunk)
        seconds: dict[str, float] = {}
        with timed(seconds, "preprocess", device):
            conditioning = condition(image, args.foreground_ratio)
        with timed(seconds, "encode", device), pipeline.autocast_for(device, dtype):
            planes = model([conditioning], device=str(device))
        with timed(seconds, "field", device):
            points = grid_points(args.mc_resolution, radius, device)
            density = model.renderer.query_triplane(model.decoder, points, planes[0].float())
            density = density["density_act"].reshape((args.mc_resolution,) * 3)
        return seconds, {"planes": planes[0].float(), "density": density.cpu()}

    return run


def upstream_facts(upstream_dir: Path, model: torch.nn.Module) -> dict[str, str]:
    """Which upstream ran: its commit, and the attention its ViT and transformer use."""
    import subprocess

    import transformers

    commit = subprocess.run(
        ["git", "-C", str(upstream_dir), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    vit = getattr(model.image_tokenizer, "model", None)
    vit_attention = getattr(getattr(vit, "config", None), "_attn_implementation", "unknown")
    processors = {
        type(m.processor).__name__ for m in model.modules() if hasattr(m, "processor")
    }
    return {
        "commit": commit or "unknown (not a git checkout)",
        "transformers": transformers.__version__,
        "vit_attention": str(vit_attention),
        "transformer_attention": ", ".join(sorted(processors)) or "unknown",
    }


def _not_installed(module: str) -> Callable[..., None]:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(f"{module} is not installed")

    return fail


def relative_error(
    ours: torch.Tensor | np.ndarray, theirs: torch.Tensor | np.ndarray, reduce: str = "max"
) -> float:
    """Max (or mean) of |a - b| / max(|b|, 1 % of max |b|): relative, floored near zero."""
    a = torch.as_tensor(ours).double().cpu()
    b = torch.as_tensor(theirs).double().cpu()
    scale = torch.clamp(b.abs(), min=0.01 * float(b.abs().max()))
    error = (a - b).abs() / scale
    return float(error.max() if reduce == "max" else error.mean())


def surface_distance(vertices: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Symmetric nearest-vertex distance between two meshes' vertex sets, in % of the
    reference's bounding-box diagonal: mean and max (marching-cubes vertices lie on the
    surface, a grid cell apart at most, so this tracks the surface distance)."""
    from scipy.spatial import cKDTree

    diagonal = float(np.linalg.norm(reference.max(axis=0) - reference.min(axis=0))) or 1.0
    there = cKDTree(reference).query(vertices)[0]
    back = cKDTree(vertices).query(reference)[0]
    both = np.concatenate([there, back])
    return {
        "surface_mean_pct": float(both.mean() / diagonal * 100),
        "surface_max_pct": float(both.max() / diagonal * 100),
    }


def agreement(outputs: dict, reference: dict) -> dict[str, float]:
    """How far a variant's output is from the reference's (fp32, 8k chunks, same run)."""
    found = {
        "density_max_rel": relative_error(outputs["density"], reference["density"]),
        "density_mean_rel": relative_error(outputs["density"], reference["density"], "mean"),
        "density_identical": bool(torch.equal(outputs["density"], reference["density"])),
        "planes_max_rel": relative_error(outputs["planes"], reference["planes"]),
    }
    if "faces" in outputs and "faces" in reference:
        found["faces"] = outputs["faces"]
        found["faces_reference"] = reference["faces"]
        found.update(surface_distance(outputs["vertices"], reference["vertices"]))
    return found


STAGES_COMPARED = ("preprocess", "encode", "field")  # what upstream's side runs


def compared_time(row: dict) -> dict[str, float]:
    """Median, min and max seconds over the compared stages (sums of per-repeat stages are
    not kept, so min/max are the stage-wise sums: a slight overstatement of the spread)."""
    return {
        "median": sum(row["seconds"][s] for s in STAGES_COMPARED),
        "min": sum(row["seconds_min"][s] for s in STAGES_COMPARED),
        "max": sum(row["seconds_max"][s] for s in STAGES_COMPARED),
    }


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
    # (name, dtype, chunk, marching cubes); the first is the reference: upstream's settings.
    variants: list[tuple[str, torch.dtype, int, str]] = [
        (f"ours float32, chunk {args.chunk_size}, mc skimage", torch.float32, args.chunk_size,
         "skimage"),
        (f"ours float32, chunk {args.big_chunk}, mc auto (product default)", torch.float32,
         args.big_chunk, "auto"),
        (f"ours {args.dtype}, chunk {args.big_chunk}, mc auto", half, args.big_chunk, "auto"),
    ]  # fmt: skip
    rows, reference, settings = [], None, []
    for name, dtype, chunk, mc_method in variants:
        row, outputs = measure(
            name,
            lambda d=dtype, c=chunk, m=mc_method: run_ours(model, image, args, d, c, threshold, m),
            args.repeats,
            device,
        )
        reference = reference or outputs
        row["dtype"], row["chunk"] = str(dtype).removeprefix("torch."), chunk
        row["agreement_vs_reference"] = agreement(outputs, reference)
        rows.append(row)
        settings.append((row, dtype, chunk, outputs))
    upstream_note, facts, comparisons = "not run (no --upstream-dir)", {}, []
    if args.upstream_dir is not None:
        try:
            upstream = upstream_model(args.upstream_dir, config, state, device)
            facts = upstream_facts(args.upstream_dir, upstream)
            # Each of our settings is re-run beside upstream at the same settings, interleaved
            # (measure_pair), over the stages upstream's side has: preprocess, encode, field.
            pairs = {}
            for ours, dtype, chunk, _ours_out in settings:
                key = (dtype, chunk)
                if key in pairs:
                    continue
                theirs_run = upstream_runner(upstream, image, args, device, dtype, chunk,
                                             config.radius)
                ours_run = lambda d=dtype, c=chunk: run_ours(  # noqa: E731
                    model, image, args, d, c, threshold, upto_field=True)
                names = (f"ours {ours['dtype']}, chunk {chunk} (paired with upstream)",
                         f"upstream {ours['dtype']}, chunk {chunk}")
                (ours_row, theirs_row), (ours_pair, theirs_out) = measure_pair(
                    names, (ours_run, theirs_run), args.repeats)
                for row, out in ((ours_row, ours_pair), (theirs_row, theirs_out)):
                    row["dtype"], row["chunk"] = ours["dtype"], chunk
                    row["agreement_vs_reference"] = agreement(out, reference)
                    rows.append(row)
                pairs[key] = (ours_row, theirs_row, ours_pair, theirs_out)
                comparisons.append(comparison(
                    f"same settings, interleaved: {ours['dtype']}, {chunk}-point chunks",
                    ours_row, theirs_row, agreement(ours_pair, theirs_out)))  # fmt: skip
            product = pairs[(torch.float32, args.big_chunk)]
            _, theirs, _, theirs_out = pairs[(torch.float32, args.chunk_size)]
            comparisons.append(comparison(
                "defaults vs defaults (ours: product default; upstream: run.py's), not the claimed"
                " ratio", product[0], theirs, agreement(product[2], theirs_out)))  # fmt: skip
            upstream_note = "run"
        except Exception as error:  # report why upstream could not run, keep our numbers
            upstream_note = f"failed: {type(error).__name__}: {error}"
    # Last, so that the pairs above time the eager model.
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
        "upstream_facts": facts,
        "repeats": args.repeats,
        "rows": rows,
        "comparisons": comparisons,
    }
    print_table(report)
    out = args.out or default_out("triposr_tiny" if args.tiny else f"triposr_{device.type}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


def comparison(label: str, ours: dict, theirs: dict, same_output: dict) -> dict:
    """One ours-vs-upstream pair: times over the compared stages and the output agreement."""
    ours_s, theirs_s = compared_time(ours), compared_time(theirs)
    return {
        "label": label,
        "ours": ours["variant"],
        "upstream": theirs["variant"],
        "stages": list(STAGES_COMPARED),
        "ours_s": ours_s,
        "upstream_s": theirs_s,
        "speedup": theirs_s["median"] / max(ours_s["median"], 1e-9),
        "warmed_up": True,
        "repeats": ours["repeats"],
        "agreement": same_output,
    }


def print_table(report: dict) -> None:
    header = f"{'variant':60s}" + "".join(f"{s:>11s}" for s in STAGES)
    header += f"{'total':>9s}{'VRAM MB':>9s}"
    print(header)
    for row in report["rows"]:
        cells = "".join(f"{row['seconds'].get(s, float('nan')) * 1000:9.1f}ms" for s in STAGES)
        vram = f"{row['peak_vram_mb']:9.0f}" if row["peak_vram_mb"] is not None else f"{'-':>9s}"
        print(f"{row['variant']:60s}{cells}{row['total_s']:8.3f}s{vram}")
    print("agreement with the reference (first row): density max / mean rel, faces, surface")
    for row in report["rows"]:
        a = row["agreement_vs_reference"]
        surface = (
            f", surface mean {a['surface_mean_pct']:.4f} % max {a['surface_max_pct']:.4f} %"
            if "surface_mean_pct" in a else ""
        )
        faces = f", faces {a['faces']} vs {a['faces_reference']}" if "faces" in a else ""
        print(f"  {row['variant']:60s} {a['density_max_rel']:.2e} / {a['density_mean_rel']:.2e}"
              f"{faces}{surface}")  # fmt: skip
    for c in report["comparisons"]:
        print(f"{c['label']}: ours {c['ours_s']['median']:.3f} s, upstream "
              f"{c['upstream_s']['median']:.3f} s -> {c['speedup']:.2f}x; density max rel "
              f"{c['agreement']['density_max_rel']:.2e}")  # fmt: skip
    print(
        f"upstream: {report['upstream']} {report['upstream_facts']}; load {report['load_s']:.2f}"
        f" s; threshold {report['threshold']:.4g}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
