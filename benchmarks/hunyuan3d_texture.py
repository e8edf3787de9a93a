"""Hunyuan3D-Paint texture stage: time per part and peak VRAM, full-size random weights.

Writes the delight model (InstructPix2Pix: SD 2 UNet with 8 input channels, SD VAE, OpenCLIP-H
sized text encoder) and the paint model (the 2.5D UNet at Stable Diffusion 2.1's config from
tests/data/hunyuan/paint_unet_manifest.json, SD VAE, scheduler) in their diffusers folder
layout with random weights, loads them through our loading code, and paints an icosphere of
82k faces from a random RGBA image with upstream's defaults (512 px views, 30 paint steps,
50 delight steps), then bakes the views the way a job does: the geometry pipeline decimates the
full mesh to 40k faces, unwraps it and bakes a 1024 atlas (upstream: 2048). Parts are split at
the progress events: prepare (condition renders), delight, multiview (30 UNet steps and the VAE
decode), bake (the pipeline's bake stage: depth maps, back-projection, fill, dilation). The
model no longer decimates, unwraps or bakes (results before that change list prepare =
decimate + unwrap + renders and decode_bake = VAE decode + the model's own bake). hy3dgen's
texture stage needs its CUDA rasteriser build, so no upstream column. Used by
benchmarks/hunyuan3d.py ``--texture``; alone:

    .venv/backend/bin/python benchmarks/hunyuan3d_texture.py            # GPU, full size
    .venv/backend/bin/python benchmarks/hunyuan3d_texture.py --tiny     # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.cancellation import CancelToken  # noqa: E402
from backend.geometry.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from backend.geometry.raw_asset import RawAsset  # noqa: E402
from backend.geometry.warmup import warm_up  # noqa: E402
from backend.models.hunyuan3d.paint.delight import load_delight  # noqa: E402
from backend.models.hunyuan3d.paint.loading import load_paint_models  # noqa: E402
from backend.models.hunyuan3d.paint.texture import PaintSettings, paint_views  # noqa: E402
from backend.models.hunyuan3d.paint.unet import PaintUNet  # noqa: E402
from backend.models.testing.clip_tokenizer import write_clip_tokenizer  # noqa: E402
from backend.models.testing.hunyuan_paint import write_tiny_paint_model  # noqa: E402
from backend.models.testing.instruct_pix2pix import write_tiny_instruct_pix2pix  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402

MANIFEST = REPO / "tests" / "data" / "hunyuan" / "paint_unet_manifest.json"
SD_VAE = {
    "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4,
    "norm_num_groups": 32, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "sample_size": 512,
}
SCHEDULER = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}


def _sd_vae(folder: Path, dtype: torch.dtype) -> None:
    from diffusers import AutoencoderKL

    AutoencoderKL(**SD_VAE).to(dtype).save_pretrained(folder)


def write_full_paint(folder: Path, device: torch.device, dtype: torch.dtype) -> None:
    """The paint model's folder: 2.5D UNet (safetensors), VAE, scheduler."""
    from diffusers import EulerAncestralDiscreteScheduler
    from safetensors.torch import save_file

    config = json.loads(MANIFEST.read_text())["config"]
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with torch.device(device):
        unet = PaintUNet(config).to(dtype)
    state = {k: v.detach().cpu().contiguous() for k, v in unet.state_dict().items()}
    del unet
    save_file(state, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    _sd_vae(folder / "vae", dtype)
    EulerAncestralDiscreteScheduler(**SCHEDULER).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "HunyuanPaintPipeline"}))


def write_full_delight(folder: Path, dtype: torch.dtype) -> None:
    """The delight model's folder: InstructPix2Pix with SD 2 sized parts."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    config = dict(json.loads(MANIFEST.read_text())["config"], in_channels=8)
    config.pop("_class_name")
    vocab = write_clip_tokenizer(folder / "tokenizer")
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
        num_attention_heads=16, hidden_act="gelu", max_position_embeddings=77,
        bos_token_id=vocab - 2, eos_token_id=vocab - 1,
    ))
    StableDiffusionInstructPix2PixPipeline(
        unet=UNet2DConditionModel(**config).to(dtype), vae=AutoencoderKL(**SD_VAE).to(dtype),
        text_encoder=text.to(dtype), tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        scheduler=EulerAncestralDiscreteScheduler(**SCHEDULER), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    ).save_pretrained(folder)


class PartTimer:
    """A progress callback that timestamps stage changes (CUDA-synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, step: int, total: int, *rest: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.last[f"{stage}:{step}"] = self.last[stage] = time.perf_counter()


def time_texture(tiny: bool, device: torch.device, dtype: torch.dtype) -> dict:
    """Write the folders, load, paint once; seconds per part and peak VRAM (MB)."""
    import trimesh

    with tempfile.TemporaryDirectory() as tmp:
        delight_dir, paint_dir = Path(tmp) / "delight", Path(tmp) / "paint"
        if tiny:
            write_tiny_instruct_pix2pix(delight_dir)
            write_tiny_paint_model(paint_dir)
        else:
            write_full_delight(delight_dir, torch.float16)
            write_full_paint(paint_dir, device, torch.float16)
        start = time.perf_counter()
        names = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}
        delight = load_delight(delight_dir, str(device), names[dtype])
        models = load_paint_models(paint_dir, str(device), dtype)
        load_s = time.perf_counter() - start
    sphere = trimesh.creation.icosphere(subdivisions=3 if tiny else 6, radius=0.5)
    image = np.random.default_rng(0).integers(0, 256, (512, 512, 4), dtype=np.uint8)
    image[..., 3] = 255
    settings = (PaintSettings(view_size=16, steps=2, delight_steps=2) if tiny
                else PaintSettings())  # fmt: skip
    options = PipelineOptions(target_faces=500 if tiny else 40_000,
                              texture_size=256 if tiny else 1024)  # fmt: skip
    timer = PartTimer(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        painted = paint_views(sphere.vertices, sphere.faces, image, delight, models, settings,
                              timer, CancelToken())  # fmt: skip
    if device.type == "cuda":
        torch.cuda.synchronize()
    painted_at = time.perf_counter()
    result = run_pipeline(RawAsset(sphere.vertices, sphere.faces, views=painted), options)
    marks = timer.last
    parts = {
        "load": load_s,
        "prepare": marks["texture_prepare:2"] - start,
        "delight": marks["texture_prepare:3"] - marks["texture_prepare:2"],
        "multiview": painted_at - marks["texture_prepare:3"],
        "bake": result.timings_s["bake"],
        "texture_total": painted_at - start + result.timings_s["bake"],
    }
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    return {"seconds": parts["texture_total"], "peak_vram_mb": peak, "parts": parts,
            "pipeline_s": result.timings_s, "faces": result.faces,
            "settings": f"{settings}, {options.target_faces} faces, {options.texture_size} px"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: a new one in benchmarks/runs/)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    warmup_s = warm_up()  # numba's one-off compile of decimate / UV is setup's cost
    result = {**time_texture(args.tiny, device, dtype), "geometry_warmup_s": round(warmup_s, 3)}
    print(f"{'part':<16}{'seconds':>10}")
    for name, seconds in result["parts"].items():
        print(f"{name:<16}{seconds:>10.3f}")
    print(f"peak VRAM {result['peak_vram_mb']:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.out or default_out("hunyuan3d_texture")
    args.out.write_text(json.dumps({"device": str(device), **result}, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
