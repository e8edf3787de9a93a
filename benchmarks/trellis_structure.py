"""TRELLIS structure stage at full size: random weights in the official layout, time and memory.

Writes the released image model's sparse-structure flow and decoder (``ckpts/*.json`` +
``*.safetensors``, fp16 torso) and a DINOv2 ViT-L/14-reg in the hub's transformers layout,
loads them through the real strict loaders, and times: the conditioner (framing + DINOv2, one
518 px image), one SS-flow forward, the whole SS sampling at the release's settings (25 steps,
guidance 5 in [0.5, 1], 44 forwards), the decoder and the occupied-voxel extraction. Peak memory
on CUDA. The structured-latent stages are not part of this build yet.

    .venv/backend/bin/python benchmarks/trellis_structure.py --device cuda --dtype float16
    .venv/backend/bin/python benchmarks/trellis_structure.py --device cpu --dtype float32 --tiny
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.models.common.torch_dtypes import torch_dtype  # noqa: E402
from backend.models.trellis import testing  # noqa: E402
from backend.models.trellis.conditioners import load_image_conditioner  # noqa: E402
from backend.models.trellis.config import (  # noqa: E402
    TINY_SS_DECODER,
    TINY_SS_FLOW,
    NetworkSpec,
    SSDecoderConfig,
    SSFlowConfig,
)
from backend.models.trellis.dinov2 import DinoConfig  # noqa: E402
from backend.models.trellis.loading import load_network, stored_state, write_network  # noqa: E402
from backend.models.trellis.sampler import (  # noqa: E402
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
    forward_count,
)
from backend.models.trellis.ss_decoder import SparseStructureDecoder, occupied_coords  # noqa: E402
from backend.models.trellis.ss_flow import SparseStructureFlowModel  # noqa: E402

SS_FLOW_L = SSFlowConfig(
    resolution=16, in_channels=8, model_channels=1024, cond_channels=1024, out_channels=8,
    num_blocks=24, num_heads=16, mlp_ratio=4, patch_size=1, pe_mode="ape", qk_rms_norm=True,
    use_fp16=True,
)  # fmt: skip
SS_DECODER = SSDecoderConfig(
    out_channels=1, latent_channels=8, num_res_blocks=2, num_res_blocks_middle=2,
    channels=(512, 128, 32), use_fp16=True,
)  # fmt: skip


def write_networks(folder: Path, tiny: bool) -> None:
    """Random SS flow, SS decoder and DINOv2 in the official layouts (full size or tiny)."""
    flow_config = TINY_SS_FLOW if tiny else SS_FLOW_L
    decoder_config = TINY_SS_DECODER if tiny else SS_DECODER
    flow = testing.randomize(SparseStructureFlowModel(flow_config), seed=1)
    write_network(folder / "ckpts/ss_flow", NetworkSpec("SparseStructureFlowModel", flow_config),
                  stored_state(flow))  # fmt: skip
    del flow
    decoder = testing.randomize(SparseStructureDecoder(decoder_config), seed=2)
    write_network(folder / "ckpts/ss_dec", NetworkSpec("SparseStructureDecoder", decoder_config),
                  stored_state(decoder))  # fmt: skip
    testing.write_dinov2(folder / "dinov2", testing.TINY_DINO if tiny else DinoConfig(), seed=3)


def subject(size: int = 1024) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., 0], pixels[..., 1] = (xx * 0.5 + 0.5) * 255, (yy * 0.5 + 0.5) * 255
    pixels[..., 2], pixels[..., 3] = 100, (xx**2 + yy**2 < 0.5) * 255
    return pixels


def timed(device: torch.device, function, runs: int = 3) -> tuple[float, object]:
    """Median seconds of ``runs`` calls after one warm-up, and the last result."""
    result = function()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", help="torso dtype of the flows")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--tiny", action="store_true", help="the test configs (a CPU smoke run)")
    args = parser.parse_args()
    device = torch.device(args.device)
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                     else platform.processor() or platform.machine(),
                     "torch": torch.__version__, "dtype": args.dtype, "threads":
                     torch.get_num_threads()}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        folder = Path(scratch)
        start = time.perf_counter()
        write_networks(folder, args.tiny)
        results["write_s"] = time.perf_counter() - start
        start = time.perf_counter()
        conditioner = load_image_conditioner(folder / "dinov2", device)
        flow, _ = load_network(folder / "ckpts/ss_flow", device, torch_dtype(args.dtype))
        decoder, _ = load_network(folder / "ckpts/ss_dec", device, torch_dtype(args.dtype))
        results["load_s"] = time.perf_counter() - start
        image = subject()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        results["condition_s"], cond = timed(device, lambda: conditioner.encode([image]),
                                             args.runs)  # fmt: skip
        neg = conditioner.negative(cond)
        side = flow.resolution
        noise = torch.randn(1, 8, side, side, side, generator=torch.Generator().manual_seed(0))
        noise = noise.to(device)
        t = torch.tensor([1000.0], device=device)
        results["flow_forward_s"], _ = timed(device, lambda: flow(noise, t, cond), args.runs)
        settings = SamplerSettings(args.steps, 5.0, (0.5, 1.0), 3.0)
        sampler = FlowEulerGuidanceIntervalSampler()
        results["flow_forwards"] = forward_count(settings)
        results["structure_sampling_s"], latent = timed(
            device, lambda: sampler.sample(flow, noise, cond, neg, settings), 1
        )
        results["decode_s"], coords = timed(
            device, lambda: occupied_coords(decoder(latent)), args.runs
        )
        results["occupied_voxels"] = len(coords)
        results["finite"] = bool(torch.isfinite(latent).all())
        if device.type == "cuda":
            results["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
