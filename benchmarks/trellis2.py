"""TRELLIS.2 network time per stage: random weights in the official layout, the real code path.

Writes the release's files (pipeline.json, the seven ``ckpts/*.json`` + ``*.safetensors``
with the flows' torso in bf16 and the decoders' in fp16 as stored, TRELLIS v1's structure
decoder, a DINOv3 ViT-L/16 in the hub's transformers layout; about 8 GB) with random weights,
loads them through the production loader (strict, stored dtypes) and times
``Trellis2Pipeline.run`` stage by stage from its progress reports, for the 512 pipeline and
the 1024 cascade: a warm-up run, then ``--runs`` timed runs (median / min / max per stage) and
the peak VRAM of each pipeline type. ``--tiny`` runs the test configuration (a CPU smoke run).

Random weights occupy a third of the structure grid; a real asset marks a shell. Before timing,
the structure decoder's output bias is shifted so that ``--voxels`` of its 64^3 voxels are
occupied for the run's seed (every later stage scales with that count). Weights are written
tensor by tensor (``torch.empty`` + ``normal_``, norms at one, biases at zero) straight into
safetensors; the write time is in the report.

    .venv/backend/bin/python benchmarks/trellis2.py --device cuda --out results/trellis2.json
    .venv/backend/bin/python benchmarks/trellis2.py --tiny --device cpu --runs 1 --out r.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.models.trellis import testing as v1_testing  # noqa: E402
from backend.models.trellis.config import network_spec_from_dict  # noqa: E402
from backend.models.trellis.loading import stored_state  # noqa: E402
from backend.models.trellis.loading import write_network as write_v1_network  # noqa: E402
from backend.models.trellis.ss_decoder import SparseStructureDecoder  # noqa: E402
from backend.models.trellis2 import adapter as cards  # noqa: E402
from backend.models.trellis2 import testing  # noqa: E402
from backend.models.trellis2.config import SS_DECODER  # noqa: E402
from backend.models.trellis2.loading import build_network  # noqa: E402
from backend.models.trellis2.pipeline import Trellis2Pipeline, Trellis2Request  # noqa: E402
from benchmarks.common import disc_image, synchronised_now  # noqa: E402

_FLOW = dict(
    model_channels=1536, cond_channels=1024, num_blocks=30, num_heads=12, mlp_ratio=5.3334,
    pe_mode="rope", share_mod=True, initialization="scaled", qk_rms_norm=True,
    qk_rms_norm_cross=True,
)  # fmt: skip
_CONVNEXT = ["SparseConvNeXtBlock3d"] * 5
_DECODER = dict(
    model_channels=[1024, 512, 256, 128, 64], latent_channels=32, num_blocks=[4, 16, 8, 4, 0],
    block_type=_CONVNEXT, up_block_type=["SparseResBlockC2S3d"] * 4,
    block_args=[{"use_checkpoint": False}] * 5, use_fp16=True,
)  # fmt: skip
# role -> (class, args, stored torso dtype): upstream's configs/gen and configs/scvae.
RELEASED: dict[str, tuple[str, dict[str, Any], torch.dtype]] = {
    "sparse_structure_flow_model": ("SparseStructureFlowModel",
                                    dict(resolution=16, in_channels=8, out_channels=8, **_FLOW),
                                    torch.bfloat16),
    "shape_slat_flow_model_512": ("ElasticSLatFlowModel",
                                  dict(resolution=32, in_channels=32, out_channels=32, **_FLOW),
                                  torch.bfloat16),
    "shape_slat_flow_model_1024": ("ElasticSLatFlowModel",
                                   dict(resolution=64, in_channels=32, out_channels=32, **_FLOW),
                                   torch.bfloat16),
    "tex_slat_flow_model_512": ("ElasticSLatFlowModel",
                                dict(resolution=32, in_channels=64, out_channels=32, **_FLOW),
                                torch.bfloat16),
    "tex_slat_flow_model_1024": ("ElasticSLatFlowModel",
                                 dict(resolution=64, in_channels=64, out_channels=32, **_FLOW),
                                 torch.bfloat16),
    "shape_slat_decoder": ("FlexiDualGridVaeDecoder", dict(resolution=256, **_DECODER),
                           torch.float16),
    "tex_slat_decoder": ("SparseUnetVaeDecoder",
                         dict(out_channels=6, pred_subdiv=False, **_DECODER), torch.float16),
}  # fmt: skip
# TRELLIS v1's ss_dec_conv3d_16l8_fp16 (the hub's ckpts JSON).
V1_SS_DECODER = {"name": "SparseStructureDecoder", "args": {
    "out_channels": 1, "latent_channels": 8, "num_res_blocks": 2, "num_res_blocks_middle": 2,
    "channels": [512, 128, 32], "use_fp16": True}}  # fmt: skip
DINOV3_L16 = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
    num_register_tokens=4, patch_size=16, layerscale_value=1.0,
)  # fmt: skip


def _fill(key: str, tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The random rule, in place: norms' weights 1, biases 0, the rest N(0, 0.02)."""
    if key.endswith("bias"):
        return tensor.zero_()
    if tensor.dim() == 1 and key.endswith("weight"):
        return tensor.fill_(1.0)
    return tensor.normal_(0.0, 0.02, generator=generator)


def random_state(network: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Per floating tensor of a meta-built network, a new CPU tensor filled by ``_fill``."""
    generator = torch.Generator().manual_seed(seed)
    return {
        key: _fill(key, torch.empty(meta.shape, dtype=meta.dtype), generator)
        for key, meta in network.state_dict().items()
        if meta.is_floating_point()
    }


def write_full_size(folder: Path) -> None:
    """The release's files with random weights (about 8 GB), DINOv3 and v1's decoder."""
    from safetensors.torch import save_file

    config = testing.pipeline_config()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.json").write_text(json.dumps(config.to_dict(), indent=4))
    for seed, (role, (name, args, torso)) in enumerate(RELEASED.items()):
        with torch.device("meta"):
            network = build_network(name, args, role)
            network.convert_torso(torso)
        stem = folder / cards.STEMS[role]
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps({"name": name, "args": args}))
        save_file(random_state(network, seed), str(stem.with_suffix(".safetensors")))
    spec = network_spec_from_dict(V1_SS_DECODER, SS_DECODER)
    decoder = v1_testing.randomize(SparseStructureDecoder(spec.config), seed=40)
    write_v1_network(folder / "decoders" / cards.SS_DECODER_STEM, spec,
                     stored_state(decoder, True))  # fmt: skip
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    with torch.device("meta"):
        dino = DINOv3ViTModel(DINOv3ViTConfig(**DINOV3_L16))
    dino_dir = folder / "dinov3"
    dino_dir.mkdir(exist_ok=True)
    dino.config.save_pretrained(str(dino_dir))
    save_file(random_state(dino, 41), str(dino_dir / "model.safetensors"))


def fill_random(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``_fill`` on the parameters in place on the network's own device (buffers as built)."""
    generator = torch.Generator(next(network.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for key, tensor in network.named_parameters():
            _fill(key, tensor, generator)
    return network.eval().requires_grad_(False)


def build_in_memory(device: torch.device, cascade: bool) -> Trellis2Pipeline:
    """The release's networks built on ``device`` with random weights in their stored dtypes:
    no 16 GB write (minutes on the GPU box). The loader of the same layout is tested by
    ``--weights`` runs and the test suite; what is timed here is the same modules."""
    from backend.models.trellis.loading import build_network as build_v1_network
    from backend.models.trellis2.dinov3 import Dinov3Conditioner
    from backend.models.trellis2.pipeline import NETWORKS_CASCADE

    networks: dict[str, torch.nn.Module] = {}
    for seed, (role, (name, args, torso)) in enumerate(RELEASED.items()):
        if role in NETWORKS_CASCADE and not cascade:
            continue
        with torch.device(device):
            network = build_network(name, args, role)
        network.convert_torso(torso)
        networks[role] = fill_random(network, seed)
    spec = network_spec_from_dict(V1_SS_DECODER, SS_DECODER)
    with torch.device(device):
        decoder = build_v1_network(spec)
    decoder.convert_torso(torch.float16)
    networks[SS_DECODER] = fill_random(decoder, 40)
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    with torch.device(device):
        dino = DINOv3ViTModel(DINOv3ViTConfig(**DINOV3_L16))
    conditioner = Dinov3Conditioner(fill_random(dino, 41), device)
    return Trellis2Pipeline(testing.pipeline_config(), conditioner, networks, device)


def shell_logits(shape: torch.Size, voxels: int, like: torch.Tensor) -> torch.Tensor:
    """Structure logits whose ``voxels`` occupied voxels are a sphere's shell (the voxels
    nearest a sphere of radius 0.4 of the grid): a surface, like a real asset's occupancy,
    rather than random weights' scattered third of the grid."""
    size = shape[-1]
    axis = torch.arange(size, device=like.device, dtype=torch.float32) - (size - 1) / 2
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    away = ((x * x + y * y + z * z).sqrt() - 0.4 * size).abs().flatten()
    chosen = torch.topk(-away, min(voxels, away.numel())).indices
    logits = torch.full((away.numel(),), -1.0, device=like.device)
    logits[chosen] = 1.0
    return logits.view(shape[-3:]).expand(shape).to(like.dtype).contiguous()


class Clock:
    """Progress callback: the device-synchronised time of every stage's first report."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.firsts = device, {}
        self.start = self.now()

    def now(self) -> float:
        return synchronised_now(self.device)

    def __call__(self, stage: str, step: int, total: int) -> None:
        key = stage
        if stage in self.firsts and step == 0 and stage == "shape":
            key = "shape_hr"  # the cascade's second shape pass
        self.firsts.setdefault(key, self.now())

    def seconds(self) -> dict[str, float]:
        end = self.now()
        names = list(self.firsts)
        stops = [*(self.firsts[n] for n in names[1:]), end]
        out = {n: stop - self.firsts[n] for n, stop in zip(names, stops, strict=True)}
        out["total"] = end - self.start
        return out


class Stop(Exception):  # noqa: N818 - a sentinel
    pass


def force_shell(pipeline: Trellis2Pipeline, voxels: int) -> None:
    """Every structure decode (still computed, so timed) yields a shell of ``voxels``."""
    decoder = pipeline.networks[SS_DECODER]
    decoder.register_forward_hook(lambda _m, _i, out: shell_logits(out.shape, voxels, out))


def calibrate(pipeline: Trellis2Pipeline, request: Trellis2Request, voxels: int) -> int:
    """Shift the structure decoder's output bias so ``voxels`` of its voxels are occupied."""
    decoder = pipeline.networks[SS_DECODER]
    captured: list[torch.Tensor] = []
    hook = decoder.register_forward_hook(lambda _m, _i, out: captured.append(out.float()))

    def stop(stage: str, step: int, total: int) -> None:
        if stage == "shape":
            raise Stop

    try:
        pipeline.run(request, stop)
    except Stop:
        pass
    finally:
        hook.remove()
    logits = captured[-1].flatten()
    before = int((logits > 0).sum())
    k = min(voxels, logits.numel() - 1)
    values = torch.topk(logits, k + 1).values
    with torch.no_grad():
        bias = decoder.out_layer[2].bias
        bias -= ((values[k - 1] + values[k]) / 2).to(bias.dtype)
    return before


def profile_run(pipeline: Trellis2Pipeline, request: Trellis2Request) -> list[dict[str, Any]]:
    """One run under torch.profiler: the 25 ops with the most device (else CPU) time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    cuda = pipeline.device.type == "cuda"
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        pipeline.run(request, lambda *_: None)
    rows = []
    for event in prof.key_averages():
        device_us = getattr(event, "self_device_time_total", 0) if cuda else 0
        rows.append({"op": event.key, "calls": event.count, "device_ms": device_us / 1e3,
                     "cpu_ms": event.self_cpu_time_total / 1e3})  # fmt: skip
    rows.sort(key=lambda r: r["device_ms"] if cuda else r["cpu_ms"], reverse=True)
    return rows[:25]


def agreement(eager: Any, other: Any) -> dict[str, Any]:
    """How far a variant's output is from the eager run's (same seed, same inputs)."""

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.float(), b.float()
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))

    same_voxels = torch.equal(eager.coords.cpu(), other.coords.cpu())
    return {
        "same_structure_voxels": same_voxels,
        "shape_latent_max_rel": rel(other.shape_latent.feats, eager.shape_latent.feats)
        if same_voxels else None,
        "texture_latent_max_rel": rel(other.texture_latent.feats, eager.texture_latent.feats)
        if same_voxels else None,
        "faces": [len(eager.mesh.faces), len(other.mesh.faces)],
    }  # fmt: skip


def summary(runs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    stages = runs[0].keys()
    return {
        s: {
            "median": statistics.median(r[s] for r in runs),
            "min": min(r[s] for r in runs),
            "max": max(r[s] for r in runs),
        }
        for s in stages
    }


def load_or_write(
    args: argparse.Namespace, folder: Path, report: dict[str, Any], started: float
) -> Trellis2Pipeline:
    """Weights from files through the production loader (written first when absent)."""
    if args.tiny:
        testing.write_tiny_weights(folder / "model")
        components = testing.write_tiny_components(folder / "components")
        model, dino, shared = folder / "model", components["dinov3"], components["decoders"]
    else:
        model, dino, shared = folder, folder / "dinov3", folder / "decoders"
        if not (folder / "pipeline.json").is_file():
            write_full_size(folder)
    report["write_s"] = time.perf_counter() - started
    print(f"weights ready in {report['write_s']:.1f} s", flush=True)
    report["weights_gb"] = sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e9
    started = time.perf_counter()
    pipeline = Trellis2Pipeline.from_folder(
        model, dinov3_folder=dino, shared_folders=[shared], device=torch.device(args.device)
    )
    report["load_s"] = time.perf_counter() - started
    return pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after a warm-up")
    parser.add_argument("--voxels", type=int, default=20_000, help="occupied 64^3 voxels")
    parser.add_argument("--types", default="512,1024_cascade")
    parser.add_argument("--weights", type=Path, help="reuse (or write once into) this folder")
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="build the full-size networks on the device (no weight files)",
    )
    parser.add_argument(
        "--occupancy",
        choices=("shell", "random"),
        default="shell",
        help="structure: a sphere's shell of --voxels (like an asset's "
        "surface) or the random decoder's top --voxels logits",
    )
    parser.add_argument("--profile", action="store_true", help="profile one run per type")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="time with the flows' blocks compiled (after one eager run whose "
        "output the compiled runs are compared with)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tiny", action="store_true", help="the test configs (a CPU smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scratch = tempfile.TemporaryDirectory() if args.weights is None else None
    folder = args.weights or Path(scratch.name)
    report: dict[str, Any] = {"tiny": args.tiny, "device": str(device), "runs": args.runs,
                              "host": platform.node(), "torch": torch.__version__}  # fmt: skip
    started = time.perf_counter()
    types = args.types.split(",")
    if args.in_memory and not args.tiny:
        pipeline = build_in_memory(device, cascade=any(t != "512" for t in types))
        report["write_s"], report["weights_gb"] = 0.0, sum(
            t.numel() * t.element_size() for n in pipeline.networks.values()
            for t in n.state_dict().values()) / 1e9  # fmt: skip
        report["load_s"] = time.perf_counter() - started
        report["weights"] = "random, built on the device (--in-memory)"
    else:
        pipeline = load_or_write(args, folder, report, started)
    report["occupancy"] = args.occupancy
    image = disc_image(256 if args.tiny else 1024)
    voxels = min(args.voxels, 200) if args.tiny else args.voxels
    report["types"] = {}
    for pipeline_type in types:
        steps = {}
        if args.tiny:  # one step per stage: a smoke run
            steps = {stage: dataclasses.replace(pipeline.config.samplers[role].settings, steps=1)
                     for stage, role in (("structure", "sparse_structure_sampler"),
                                         ("shape", "shape_slat_sampler"),
                                         ("texture", "tex_slat_sampler"))}  # fmt: skip
        request = Trellis2Request(images=(image,), seed=1, pipeline_type=pipeline_type, **steps)
        if args.occupancy == "random":
            report["occupied_before_calibration"] = calibrate(pipeline, request, voxels)
        elif pipeline_type == types[0]:
            force_shell(pipeline, voxels)
        eager = None
        if args.compile:
            eager = pipeline.run(request, lambda *_: None)
            if pipeline_type == types[0]:
                pipeline.compile_blocks()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        runs = []
        warm_up = time.perf_counter()
        for index in range(args.runs + 1):  # the first is the warm-up
            clock = Clock(device)
            output = pipeline.run(request, clock)
            if index:
                runs.append(clock.seconds())
            else:
                report.setdefault("warm_up_s", {})[pipeline_type] = time.perf_counter() - warm_up
        timings = runs or [clock.seconds()]
        entry = {"stages_s": summary(timings), "structure_voxels": len(output.coords),
                 "resolution": output.resolution, "faces": len(output.mesh.faces),
                 "pbr_voxels": len(output.pbr.keys)}  # fmt: skip
        if device.type == "cuda":
            entry["peak_vram_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        if eager is not None:
            entry["compiled_vs_eager"] = agreement(eager, output)
        if args.profile:
            entry["profile_top_ops"] = profile_run(pipeline, request)
        report["types"][pipeline_type] = entry
        print(table(report, only=pipeline_type), flush=True)
        if args.out:  # after each pipeline type: a run cut short keeps what it measured
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))
    if scratch is not None:
        scratch.cleanup()
    return 0


def table(report: dict[str, Any], only: str | None = None) -> str:
    lines = [f"TRELLIS.2 on {report['device']} (weights written in {report['write_s']:.1f} s, "
             f"{report['weights_gb']:.2f} GB; loaded in {report['load_s']:.1f} s)"]  # fmt: skip
    for kind, entry in report["types"].items():
        if only is not None and kind != only:
            continue
        vram = f", peak VRAM {entry['peak_vram_gb']:.1f} GiB" if "peak_vram_gb" in entry else ""
        lines.append(f"\n{kind}: {entry['structure_voxels']} tokens, grid {entry['resolution']}, "
                     f"{entry['faces']} faces{vram}")  # fmt: skip
        lines.append(f"{'stage':<12}{'median s':>10}{'min s':>10}{'max s':>10}")
        for stage, s in entry["stages_s"].items():
            lines.append(f"{stage:<12}{s['median']:>10.3f}{s['min']:>10.3f}{s['max']:>10.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
