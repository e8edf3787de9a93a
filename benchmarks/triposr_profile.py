"""TripoSR ours vs upstream at equal settings, stage by stage: operators, waits, FLOPs, time.

Why ours was slower than upstream on an H200 needs evidence a CPU can give too, so this
measures, for our network and upstream's (same seeded weights, loaded as benchmarks/triposr.py
does):

- operators that do work (what a GPU launches) per encode, in float32 and under autocast in
  bf16 (ours with its half weights, as pipeline.encode runs it), and per field chunk;
- on CUDA, operations that make the host wait for the GPU (torch's sync debug mode), per encode
  and per field chunk: a wait stops the host from queueing the next kernels;
- FLOPs per stage (matmuls and attention, from the config), to turn counts into an estimate;
- time, interleaved (both sides warmed up, then alternating order each repeat), median with
  min/max, and whether the outputs agree: the ViT, ``--layers`` backbone blocks (all by default
  on CUDA; per-block work is the same in every block), and the density grid at
  ``--resolution`` with upstream's 8k-point chunks and our 262k-point ones.

    PYTHONPATH=<transformers 4.57 wheels> .venv/backend/bin/python benchmarks/triposr_profile.py \\
        --upstream-dir PATH [--device cuda] [--threads 2] [--layers 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.models.triposr import pipeline  # noqa: E402
from backend.models.triposr.config import TripoSRConfig, VitConfig  # noqa: E402
from backend.models.triposr.half_weights import half_weights  # noqa: E402
from backend.models.triposr.isosurface import grid_points  # noqa: E402
from backend.models.triposr.loading import build_empty, load_state  # noqa: E402
from backend.models.triposr.testing import random_state  # noqa: E402
from benchmarks.op_count import kernel_ops  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402
from benchmarks.triposr import condition, input_image, upstream_model  # noqa: E402

CHUNKS = (8192, 1 << 18)


def flops(config: TripoSRConfig, points: int) -> dict[str, float]:
    """Multiply-adds x 2 of the matmuls and attention per stage (norms, activations left out)."""
    vit = config.vit
    tokens = (config.cond_image_size // vit.patch_size) ** 2 + 1
    width, inner = vit.hidden_size, vit.intermediate_size
    vit_layer = 2 * tokens * (4 * width * width + 2 * width * inner) + 4 * tokens * tokens * width
    n = 3 * config.plane_size**2
    dim, cross = config.inner_dim, config.cross_attention_dim
    block = 2 * n * (4 * dim * dim)  # self-attention projections
    block += 4 * n * n * dim  # self-attention scores and values
    block += 2 * n * 2 * dim * dim + 2 * tokens * 2 * cross * dim  # cross q, o; k, v
    block += 4 * n * tokens * dim  # cross scores and values
    block += 2 * n * (dim * 8 * dim + 4 * dim * dim)  # GEGLU feed-forward
    decoder = config.decoder_in_channels * config.decoder_neurons
    decoder += (config.decoder_hidden_layers - 1) * config.decoder_neurons**2
    decoder += config.decoder_neurons * 4
    return {
        "vit": float(vit.num_hidden_layers * vit_layer),
        "backbone": float(config.num_layers * block),
        "field_per_point": float(2 * decoder),
        "field": float(2 * decoder * points),
    }


def structure_config() -> TripoSRConfig:
    """Official layer counts and layout at narrow widths: the same operators, cheap to run."""
    vit = VitConfig(hidden_size=64, num_hidden_layers=12, num_attention_heads=4,
                    intermediate_size=128, image_size=32, patch_size=8)  # fmt: skip
    return replace(
        TripoSRConfig(), vit=vit, vit_name="dino-structure", cond_image_size=64, plane_size=4,
        token_channels=32, num_attention_heads=2, attention_head_dim=16, cross_attention_dim=64,
        norm_num_groups=8, triplane_channels=8, decoder_in_channels=24, decoder_neurons=16,
    )  # fmt: skip


def build_pair(config: TripoSRConfig, upstream_dir: Path, device: torch.device):
    state = random_state(config, seed=0)
    ours = build_empty(config)
    load_state(ours, dict(state))
    ours = ours.to(device).eval().requires_grad_(False)
    theirs = upstream_model(upstream_dir, config, state, device)
    return ours, theirs


def upstream_encode(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Upstream's TSR.forward after its image preprocessing (images (1, 3, s, s) on device)."""
    tokens = model.image_tokenizer(images[:, None])
    tokens = tokens.permute(0, 1, 3, 2).reshape(images.shape[0], -1, tokens.shape[2])
    codes = model.backbone(model.tokenizer(images.shape[0]), encoder_hidden_states=tokens)
    return model.post_processor(model.tokenizer.detokenize(codes))


def autocast(device: torch.device, half: bool) -> contextlib.AbstractContextManager:
    if not half:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def ours_autocast(
    model: torch.nn.Module, device: torch.device, half: bool
) -> Iterator[None]:
    """Autocast as pipeline.encode runs ours: with the encoder's half weights swapped in."""
    with autocast(device, half), half_weights(model, torch.bfloat16 if half else torch.float32):
        yield


def waits(device: torch.device, run: Callable[[], object]) -> int:
    """Host waits for the GPU during ``run`` (CUDA's sync debug mode); 0 elsewhere."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@torch.no_grad()
def count_work(upstream_dir: Path, device: torch.device) -> dict:
    """Operators and host waits per encode and per field chunk, both sides."""
    config = structure_config()
    ours, theirs = build_pair(config, upstream_dir, device)
    images = torch.rand(1, 3, config.cond_image_size, config.cond_image_size, device=device)
    report: dict = {"config": "official layer counts, narrow widths (operators only)"}
    for label, half in (("encode float32", False), ("encode bfloat16 autocast", True)):
        def ours_run(half: bool = half) -> object:
            with ours_autocast(ours, device, half):
                return ours(images)

        def theirs_run(half: bool = half) -> object:
            with autocast(device, half):
                return upstream_encode(theirs, images)

        ours_run(), theirs_run()
        for side, run in (("ours", ours_run), ("upstream", theirs_run)):
            counts = kernel_ops(run)
            report[f"{label} {side}"] = {
                "operators": sum(counts.values()),
                "casts (copy_)": counts["aten::copy_"],
                "host_waits": waits(device, run),
                "by_name": dict(counts.most_common(12)),
            }
    planes = ours(images)[0].float()
    resolution, chunk = 32, 4096
    chunks = resolution**3 // chunk
    points = grid_points(resolution, config.radius, device)
    theirs.renderer.set_chunk_size(chunk)
    runs = {
        "ours": lambda: pipeline.density_grid(ours, planes, resolution, chunk),
        "upstream": lambda: theirs.renderer.query_triplane(theirs.decoder, points, planes),
    }
    for side, run in runs.items():
        counts = kernel_ops(run)
        report[f"field per chunk {side}"] = {
            "operators": sum(counts.values()) / chunks,
            "host_waits": waits(device, run) / chunks,
            "by_name": {k: v / chunks for k, v in counts.most_common(12)},
        }
    return report


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(runs: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict:
    """Median/min/max seconds of each run, warmed up, in alternating order."""
    for run in runs.values():
        run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        names = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in names:
            sync(device)
            start = time.perf_counter()
            runs[name]()
            sync(device)
            samples[name].append(time.perf_counter() - start)
    result = {
        name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
        for name, v in samples.items()
    }
    result["upstream_over_ours"] = result["upstream"]["median_s"] / result["ours"]["median_s"]
    return result


def agreement(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    ours, theirs = ours.float().reshape(-1), theirs.float().reshape(-1)
    return {"identical": bool(torch.equal(ours, theirs)),
            "max_abs": float((ours - theirs).abs().max())}  # fmt: skip


@torch.no_grad()
def time_stages(args: argparse.Namespace, device: torch.device) -> dict:
    config = TripoSRConfig()
    ours, theirs = build_pair(config, args.upstream_dir, device)
    layers = args.layers or config.num_layers
    ours.backbone.transformer_blocks = ours.backbone.transformer_blocks[:layers]
    theirs.backbone.transformer_blocks = theirs.backbone.transformer_blocks[:layers]
    image = pipeline.prepare_condition(condition(input_image(512), 0.85), config.cond_image_size)
    image = image.to(device)
    report: dict = {"backbone_blocks": layers}
    for half in (False, True) if device.type == "cuda" else (False,):
        tag = "bfloat16 autocast" if half else "float32"

        def ours_vit(half: bool = half) -> torch.Tensor:
            with ours_autocast(ours, device, half):
                return ours.image_tokenizer(image)

        def theirs_vit(half: bool = half) -> torch.Tensor:
            with autocast(device, half):
                return theirs.image_tokenizer(image[:, None])[:, 0].transpose(1, 2)

        inputs = ours.tokenizer(1), theirs.tokenizer(1), ours_vit().float()

        def ours_backbone(half: bool = half, inputs: tuple = inputs) -> torch.Tensor:
            with ours_autocast(ours, device, half):
                return ours.backbone(inputs[0], inputs[2])

        def theirs_backbone(half: bool = half, inputs: tuple = inputs) -> torch.Tensor:
            with autocast(device, half):
                return theirs.backbone(inputs[1], encoder_hidden_states=inputs[2])

        for stage, pair in (("vit", (ours_vit, theirs_vit)),
                            ("backbone", (ours_backbone, theirs_backbone))):  # fmt: skip
            result = interleaved({"ours": pair[0], "upstream": pair[1]}, args.repeats, device)
            result["agreement"] = agreement(pair[0](), pair[1]())
            report[f"{stage} {tag}"] = result
    planes = torch.randn(3, config.triplane_channels, 64, 64, device=device, generator=None)
    resolution = args.resolution
    for chunk in CHUNKS:

        def ours_field(chunk: int = chunk) -> torch.Tensor:
            return pipeline.density_grid(ours, planes, resolution, chunk)

        def theirs_field(chunk: int = chunk) -> torch.Tensor:
            theirs.renderer.set_chunk_size(chunk)
            points = grid_points(resolution, config.radius, device)
            return theirs.renderer.query_triplane(theirs.decoder, points, planes)["density_act"]

        result = interleaved({"ours": ours_field, "upstream": theirs_field}, args.repeats, device)
        result["agreement"] = agreement(ours_field(), theirs_field())
        report[f"field {resolution}^3, {chunk}-point chunks"] = result
    report["flops"] = flops(config, args.resolution**3)
    report["flops"]["backbone_timed"] = report["flops"]["backbone"] * layers / config.num_layers
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-dir", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: as is)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", type=int, default=0, help="backbone blocks timed (0: all)")
    parser.add_argument("--resolution", type=int, default=0, help="field grid (0: 256 on CUDA,"
                        " 64 on the CPU)")  # fmt: skip
    parser.add_argument("--counts-only", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.resolution:
        args.resolution = 256 if device.type == "cuda" else 64
    if not args.layers and device.type != "cuda":
        args.layers = 2
    torch.manual_seed(0)
    report = {
        "benchmark": "triposr_profile",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "work": count_work(args.upstream_dir, device),
    }
    if not args.counts_only:
        report["time"] = time_stages(args, device)
    print(json.dumps(report, indent=1))
    out = args.out or default_out(f"triposr_profile_{device.type}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
