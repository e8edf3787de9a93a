"""Where TRELLIS's flow sampling spends its time: variants timed, profiled and compared.

Full-size random weights (the released SS flow, SS decoder and SLat flow configurations, fp16
torso as stored) are built in memory, nothing is written. The voxels are the parity
benchmark's kind: the structure decoder's ``--voxels`` highest logits on the sampled structure.
Per variant (``--variants``):

- ``sequential``: upstream's order, one forward per condition (sampler ``max_batch=1``);
- ``batched``: each guided step's conditional and unconditional passes as one batch of two;
- ``batched_cudnn``: the same with SDPA's cuDNN attention backend preferred (Hopper);
- ``batched_graph``: the same replayed from CUDA graphs (``velocity.GraphedVelocity``).

For each: the median wall time of the whole SS and SLat samplings (``--repeats`` after a
warm-up), one SLat forward of batch 1 and of batch 2, peak VRAM, the largest difference of the
sample from ``sequential``'s, and (``--profile``) a torch.profiler run of one SLat sampling with
the top 25 ops by device time and by CPU time and the count of host syncs
(cudaStreamSynchronize / cudaDeviceSynchronize / cudaMemcpy, aten::item /
aten::_local_scalar_dense). A table goes to stdout, everything to ``--output`` JSON.

    .venv/backend/bin/python benchmarks/trellis_profile.py --device cuda \\
        --output benchmarks/results/trellis_profile_h200.json
    .venv/backend/bin/python benchmarks/trellis_profile.py --device cpu --size mid  # a look on CPU
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.models.trellis import testing  # noqa: E402
from backend.models.trellis.config import (  # noqa: E402
    SLAT_FLOW,
    SS_DECODER,
    SS_FLOW,
    network_spec_from_dict,
)
from backend.models.trellis.loading import assign_state, build_network  # noqa: E402
from backend.models.trellis.sampler import (  # noqa: E402
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
)
from backend.models.trellis.ss_decoder import occupied_coords  # noqa: E402
from backend.models.trellis.velocity import (  # noqa: E402
    DenseFlowVelocity,
    GraphedVelocity,
    SparseFlowVelocity,
)

VARIANTS = ("sequential", "batched", "batched_cudnn", "batched_graph")
COND_TOKENS = 1374  # DINOv2 ViT-L/14-reg at 518 px
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemcpyAsync")
ITEM_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero")
# A mid-size configuration for a CPU look: the released shapes at a quarter of the width/depth.
MID = {"model_channels": 256, "cond_channels": 256, "num_blocks": 6, "num_heads": 4}
MID_DECODER = {"channels": [64, 32, 16]}


def released() -> dict:
    """The released networks' JSON (benchmarks/trellis.py, imported by its path)."""
    path = REPO / "benchmarks" / "trellis.py"
    spec = importlib.util.spec_from_file_location("dreamcad_trellis_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RELEASED


def build(
    role: str, raw: dict, seed: int, device: torch.device, size: str, dtype: torch.dtype
) -> torch.nn.Module:
    args = dict(raw["args"])
    if size == "mid":
        args.update(MID_DECODER if role == SS_DECODER else MID)
    spec = network_spec_from_dict({"name": raw["name"], "args": args}, role)
    if role == SLAT_FLOW:  # the stored layout and dtypes, loaded strictly like a real file
        with torch.device("meta"):
            network = build_network(spec)
        assign_state(network, testing.slat_flow_state(spec.config, seed), "slat_flow")
    else:
        network = testing.randomize(build_network(spec), seed)
    network.convert_torso(dtype)  # float16 as stored on CUDA; float32 on the CPU
    return network.to(device).eval().requires_grad_(False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, run: Callable[[], object]) -> float:
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def backend_for(variant: str) -> Iterator[None]:
    if variant == "batched_cudnn":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
                 SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]  # fmt: skip
        with sdpa_kernel(order, set_priority=True):
            yield
    else:
        yield


def velocities(variant: str, nets: dict, coords: torch.Tensor) -> tuple:
    ss, slat = DenseFlowVelocity(nets[SS_FLOW]), SparseFlowVelocity(nets[SLAT_FLOW], coords)
    if variant == "batched_graph":
        return GraphedVelocity(ss), GraphedVelocity(slat)
    return ss, slat


def top_ops(profile: torch.profiler.profile, key: str, limit: int = 25) -> list[dict]:
    rows = sorted(profile.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:limit]
    return [
        {
            "op": e.key,
            "calls": e.count,
            "device_ms": round(getattr(e, "device_time_total", 0.0) / 1e3, 3),
            "cpu_ms": round(e.cpu_time_total / 1e3, 3),
        }
        for e in rows
    ]


def sync_counts(profile: torch.profiler.profile) -> dict[str, int]:
    counts = {e.key: e.count for e in profile.key_averages()}
    return {name: counts.get(name, 0) for name in (*SYNC_EVENTS, *ITEM_OPS)}


def run_variant(variant: str, nets: dict, inputs: dict, args: argparse.Namespace) -> dict:
    device = inputs["coords"].device
    sampler = FlowEulerGuidanceIntervalSampler(max_batch=1 if variant == "sequential" else 2)
    settings = SamplerSettings(args.steps, 5.0 if args.cfg else 0.0, (0.5, 1.0), 3.0)
    ss_velocity, slat_velocity = velocities(variant, nets, inputs["coords"])
    cond, neg = inputs["cond"], inputs["neg"]
    out: dict = {}

    def ss() -> torch.Tensor:
        return sampler.sample(ss_velocity, inputs["ss_noise"], cond, neg, settings)

    def slat() -> torch.Tensor:
        out["slat"] = sampler.sample(slat_velocity, inputs["slat_noise"], cond, neg, settings)
        return out["slat"]

    with torch.no_grad(), backend_for(variant):
        ss(), slat()  # warm-up: caches, cuDNN/cuBLAS plans, graph capture
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result = {
            "ss_sample_s": statistics.median(timed(device, ss) for _ in range(args.repeats)),
            "slat_sample_s": statistics.median(timed(device, slat) for _ in range(args.repeats)),
        }
        noise, t = inputs["slat_noise"], torch.full((1,), 600.0, device=device)
        plain = SparseFlowVelocity(nets[SLAT_FLOW], inputs["coords"])
        for copies in (1, 2):
            conds = torch.cat([cond, neg][:copies])
            plain.many(noise, t.expand(copies), conds)  # builds this batch's caches
            times = [timed(device, lambda c=conds, k=copies: plain.many(noise, t.expand(k), c))
                     for _ in range(args.repeats)]  # fmt: skip
            result[f"slat_forward_b{copies}_s"] = statistics.median(times)
        if device.type == "cuda":
            result["peak_vram_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["sample"] = out["slat"].float()
        if args.profile and variant in args.profile:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as profile:
                slat()
                sync(device)
            result["top_by_device_time"] = top_ops(profile, "device_time_total")
            result["top_by_cpu_time"] = top_ops(profile, "cpu_time_total")
            result["sync_counts"] = sync_counts(profile)
    return result


def make_inputs(nets: dict, device: torch.device, voxels: int, steps: int) -> dict:
    """Condition, noises and the voxels: the structure decoder's ``voxels`` highest logits."""
    generator = torch.Generator().manual_seed(11)
    channels = nets[SS_FLOW].config.cond_channels
    cond = torch.randn(1, COND_TOKENS, channels, generator=generator).to(device)
    side = nets[SS_FLOW].resolution
    ss_noise = torch.randn(1, 8, side, side, side, generator=generator).to(device)
    sampler = FlowEulerGuidanceIntervalSampler()
    with torch.no_grad():
        z = sampler.sample(DenseFlowVelocity(nets[SS_FLOW]), ss_noise, cond,
                           torch.zeros_like(cond), SamplerSettings(steps, 5.0))  # fmt: skip
        logits = nets[SS_DECODER](z).float()
    flat = logits.reshape(-1)
    threshold = torch.topk(flat, min(voxels, flat.numel())).values[-1]
    coords = occupied_coords(logits - threshold + 1e-6)
    slat_noise = torch.randn(len(coords), 8, generator=generator).to(device)
    return {"cond": cond, "neg": torch.zeros_like(cond), "ss_noise": ss_noise,
            "coords": coords, "slat_noise": slat_noise}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=("full", "mid"), default="full")
    parser.add_argument("--dtype", default=None, help="torso dtype (float16 on CUDA, else 32)")
    parser.add_argument("--voxels", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--no-cfg", dest="cfg", action="store_false")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None)
    parser.add_argument("--profile", nargs="*", default=["sequential", "batched"],
                        help="variants to profile (none: no profiler)")  # fmt: skip
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    variants = args.variants or [v for v in VARIANTS if device.type == "cuda" or "_" not in v]
    start = time.perf_counter()
    raw = released()
    nets = {role: build(role, raw[role], seed, device, args.size, dtype)
            for role, seed in ((SS_FLOW, 1), (SS_DECODER, 2), (SLAT_FLOW, 3))}  # fmt: skip
    inputs = make_inputs(nets, device, args.voxels, args.steps)
    tokens = len(torch.unique(inputs["coords"][:, 1:].div(2, rounding_mode="floor"), dim=0))
    report: dict = {"device": str(device), "torch": torch.__version__, "size": args.size,
                    "voxels": len(inputs["coords"]), "tokens_after_downsample": tokens,
                    "steps": args.steps, "dtype": str(dtype), "cfg": args.cfg,
                    "repeats": args.repeats,
                    "setup_s": round(time.perf_counter() - start, 1), "variants": {}}  # fmt: skip
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    print(f"{len(inputs['coords'])} voxels, {tokens} tokens, setup {report['setup_s']} s",
          flush=True)  # fmt: skip
    reference = None
    for variant in variants:
        try:
            result = run_variant(variant, nets, inputs, args)
        except Exception as error:  # a variant that cannot run here is reported, not fatal
            report["variants"][variant] = {"error": f"{type(error).__name__}: {error}"}
            print(f"{variant}: {type(error).__name__}: {error}", flush=True)
            continue
        sample = result.pop("sample")
        if reference is None:
            reference = sample
        result["max_abs_vs_first"] = float((sample - reference).abs().max())
        result["max_rel_vs_first"] = result["max_abs_vs_first"] / float(reference.abs().max())
        report["variants"][variant] = result
        print(f"{variant:>14}: ss {result['ss_sample_s']:.3f} s"
              f"  slat {result['slat_sample_s']:.3f} s"
              f"  fwd b1 {1e3 * result['slat_forward_b1_s']:.1f} ms"
              f"  b2 {1e3 * result['slat_forward_b2_s']:.1f} ms"
              f"  peak {result.get('peak_vram_gb', 0):.2f} GB"
              f"  rel diff {result['max_rel_vs_first']:.2e}"
              f"  syncs {result.get('sync_counts', '-')}", flush=True)  # fmt: skip
        for key in ("top_by_device_time", "top_by_cpu_time"):
            for row in result.get(key, [])[:10]:
                print(f"    {key[7:]:>11} {row['op'][:60]:<60} {row['calls']:>6} "
                      f"dev {row['device_ms']:>9.2f} ms cpu {row['cpu_ms']:>9.2f} ms")  # fmt: skip
    report["total_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=1)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(f"total {report['total_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
