"""TRELLIS flow sampling with and without the exact shortcuts, in one process.

The shortcuts (``backend.models.sparse.fastpath``, ``backend.models.trellis.condition``): each
block's condition keys/values once per sampling run, the zeros negative's cross attention as a
constant, LayerNorm on half inputs without float32 copies, fused modulation. ``fastpath.plain()``
switches them all off, so both modes run on the same networks and inputs here.

Full-size random networks (the released SS flow, SS decoder and SLat flow configurations) are
built and randomised directly on the device (N(0, 1/fan_in) matrices, vectors near their init,
like ``trellis.testing.randomize``), nothing is written or read. The torso runs in ``--dtype``
(float16 as stored, on CUDA). Voxels as in ``trellis_profile.py``: the structure decoder's
``--voxels`` highest logits. Per mode: one warm-up of both samplings, then ``--repeats`` runs,
modes interleaved run by run (drift hits both); the SS and SLat sampling wall times (median,
min, max), and the largest difference of each mode's samples from the plain ones, relative to
the plain sample's largest magnitude. ``--compile`` adds a mode with ``torch.compile`` on each
transformer block (shortcuts on; the eager blocks are swapped back for the other modes).
A table goes to stdout, everything to ``--output`` JSON.

    .venv/backend/bin/python benchmarks/trellis_fast.py --compile \
        --output benchmarks/results/trellis_fast_h200.json
    .venv/backend/bin/python benchmarks/trellis_fast.py --device cpu --size mid --repeats 1
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

from backend.models.sparse import fastpath  # noqa: E402
from backend.models.trellis.config import (  # noqa: E402
    SLAT_FLOW,
    SS_DECODER,
    SS_FLOW,
    network_spec_from_dict,
)
from backend.models.trellis.loading import build_network  # noqa: E402
from backend.models.trellis.sampler import (  # noqa: E402
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
)
from backend.models.trellis.velocity import DenseFlowVelocity, SparseFlowVelocity  # noqa: E402


def _script(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"dreamcad_{name}", REPO / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


profile = _script("trellis_profile.py")  # released configs, inputs, the mid size


def randomize_on(module: torch.nn.Module, seed: int, device: torch.device) -> torch.nn.Module:
    """``trellis.testing.randomize``'s distribution, drawn on ``device`` (no host copy)."""
    generator = torch.Generator(device).manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(
                parameter.shape, generator=generator, device=device, dtype=parameter.dtype
            )
            if parameter.dim() >= 2:
                parameter.copy_(noise / max(parameter[0].numel(), 1) ** 0.5)
            else:
                centre = 1.0 if bool(torch.all(parameter == 1)) else 0.0
                parameter.copy_(centre + 0.1 * noise)
    return module


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}  # fmt: skip


def build(
    role: str, raw: dict, seed: int, device: torch.device, size: str, dtype: torch.dtype
) -> torch.nn.Module:
    args = dict(raw["args"])
    if size == "mid":
        args.update(profile.MID_DECODER if role == SS_DECODER else profile.MID)
    spec = network_spec_from_dict({"name": raw["name"], "args": args}, role)
    with torch.device(device):
        network = randomize_on(build_network(spec), seed, device)
    network.convert_torso(dtype)
    return network.eval().requires_grad_(False)


@contextlib.contextmanager
def compiled_blocks(nets: dict, wrappers: dict) -> Iterator[None]:
    """Both flows' transformer blocks swapped for ``torch.compile`` wrappers (made once, kept
    in ``wrappers``) inside the block, the eager ones restored after it."""
    originals = {role: list(nets[role].blocks) for role in (SS_FLOW, SLAT_FLOW)}
    for role, blocks in originals.items():
        if role not in wrappers:  # as compile_blocks: dynamic shapes, eager's rounding
            import torch._inductor.config as inductor

            inductor.emulate_precision_casts = True
            wrappers[role] = [torch.compile(block, dynamic=True) for block in blocks]
        for index, wrapper in enumerate(wrappers[role]):
            nets[role].blocks[index] = wrapper
    try:
        yield
    finally:
        for role, blocks in originals.items():
            for index, block in enumerate(blocks):
                nets[role].blocks[index] = block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=("full", "mid"), default="full")
    parser.add_argument("--dtype", default=None, help="torso dtype (float16 on CUDA, else 32)")
    parser.add_argument("--voxels", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="add a torch.compile mode")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    start = time.perf_counter()
    raw = profile.released()
    nets = {role: build(role, raw[role], seed, device, args.size, dtype)
            for role, seed in ((SS_FLOW, 1), (SS_DECODER, 2), (SLAT_FLOW, 3))}  # fmt: skip
    with fastpath.plain():
        inputs = profile.make_inputs(nets, device, args.voxels, args.steps)
    coords, cond, neg = inputs["coords"], inputs["cond"], inputs["neg"]
    tokens = len(torch.unique(coords[:, 1:].div(2, rounding_mode="floor"), dim=0))
    settings = SamplerSettings(args.steps, 5.0, (0.5, 1.0), 3.0)  # pipeline.json's
    sampler = FlowEulerGuidanceIntervalSampler()  # the pipeline's: guided pairs batched
    report: dict = {"device": str(device), "torch": torch.__version__, "size": args.size,
                    "voxels": len(coords), "tokens_after_downsample": tokens,
                    "steps": args.steps, "dtype": str(dtype), "repeats": args.repeats,
                    "setup_s": round(time.perf_counter() - start, 1), "modes": {}}  # fmt: skip
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    print(f"{len(coords)} voxels, {tokens} tokens, setup {report['setup_s']} s", flush=True)

    def ss() -> torch.Tensor:  # a fresh velocity per run, as the pipeline makes one
        return sampler.sample(DenseFlowVelocity(nets[SS_FLOW]), inputs["ss_noise"], cond, neg,
                              settings)  # fmt: skip

    def slat() -> torch.Tensor:
        velocity = SparseFlowVelocity(nets[SLAT_FLOW], coords)
        return sampler.sample(velocity, inputs["slat_noise"], cond, neg, settings)

    modes: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
        "plain": fastpath.plain, "fast": contextlib.nullcontext}  # fmt: skip
    wrappers: dict = {}
    if args.compile:
        modes["fast_compiled"] = lambda: compiled_blocks(nets, wrappers)
    times: dict[str, dict[str, list[float]]] = {m: {"ss": [], "slat": []} for m in modes}
    samples: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for mode, context in list(modes.items()):  # warm-up: caches, plans (compilation)
            began = time.perf_counter()
            try:
                with context():  # compiled: twice, any recompile (new shapes) done by then
                    for _ in range(2 if mode == "fast_compiled" else 1):
                        samples[mode] = {"ss": ss().float(), "slat": slat().float()}
            except Exception as error:  # torch.compile may fail on a machine: report, go on
                if mode == "plain":
                    raise
                report["modes"][mode] = {"error": f"{type(error).__name__}: {error}"[:2000]}
                print(f"{mode}: {report['modes'][mode]['error']}", flush=True)
                del modes[mode], times[mode]
                continue
            report["modes"][mode] = {"warmup_s": round(time.perf_counter() - began, 2)}
            print(f"{mode}: warm-up {report['modes'][mode]['warmup_s']} s", flush=True)
        for _ in range(args.repeats):
            for mode, context in modes.items():
                with context():
                    times[mode]["ss"].append(profile.timed(device, ss))
                    times[mode]["slat"].append(profile.timed(device, slat))
    plain = samples["plain"]
    for mode in modes:
        row = report["modes"][mode]
        for part in ("ss", "slat"):
            row[f"{part}_sample_s"] = spread(times[mode][part])
            diff = (samples[mode][part] - plain[part]).abs().max()
            row[f"{part}_max_rel_vs_plain"] = float(diff / plain[part].abs().max())
        total = [a + b for a, b in zip(times[mode]["ss"], times[mode]["slat"], strict=True)]
        row["flows_s"] = spread(total)  # plain comes first: its row is filled by now
        row["speedup_vs_plain"] = round(
            report["modes"]["plain"]["flows_s"]["median"] / row["flows_s"]["median"], 3
        )
        print(f"{mode:>14}: ss {row['ss_sample_s']['median']:.3f} s"
              f" ({row['ss_sample_s']['min']:.3f}-{row['ss_sample_s']['max']:.3f})"
              f"  slat {row['slat_sample_s']['median']:.3f} s"
              f" ({row['slat_sample_s']['min']:.3f}-{row['slat_sample_s']['max']:.3f})"
              f"  both {row['flows_s']['median']:.3f} s  x{row['speedup_vs_plain']}"
              f"  max rel vs plain ss {row['ss_max_rel_vs_plain']:.1e}"
              f" slat {row['slat_max_rel_vs_plain']:.1e}", flush=True)  # fmt: skip
    if device.type == "cuda":
        report["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    report["total_s"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=1)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(f"total {report['total_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
