"""A tiny random Hunyuan3D-Paint multi-view model in the official diffusers folder layout.

``unet/config.json`` (a Stable Diffusion 2 style UNet config, tiny) + ``unet/
diffusion_pytorch_model.bin`` (our 2.5D UNet's random weights under the official key names),
``vae/`` and ``scheduler/`` as ``save_pretrained`` writes them, and a ``model_index.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TINY_UNET_CONFIG: dict[str, Any] = {
    "_class_name": "UNet2DConditionModel",
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "cross_attention_dim": 16,
    "attention_head_dim": [2, 4],
    "use_linear_projection": True,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}


def write_tiny_paint_model(
    folder: Path,
    seed: int = 0,
    unet_state: dict[str, torch.Tensor] | None = None,
    vae_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Save the folder; ``unet_state`` (official keys) and ``vae_state`` (diffusers keys)
    replace the random UNet and VAE weights (parity data carries the weights it was made with)."""
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler

    from backend.models.hunyuan3d.paint.unet import PaintUNet

    torch.manual_seed(seed)
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    (folder / "unet" / "config.json").write_text(json.dumps(TINY_UNET_CONFIG), encoding="utf-8")
    if unet_state is None:
        unet_state = PaintUNet(TINY_UNET_CONFIG).state_dict()
    torch.save(unet_state, folder / "unet" / "diffusion_pytorch_model.bin")
    vae = AutoencoderKL(
        block_out_channels=(4, 8), norm_num_groups=4, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    if vae_state is not None:
        vae.load_state_dict(vae_state, strict=True)
    vae.save_pretrained(folder / "vae")
    EulerAncestralDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        prediction_type="v_prediction", rescale_betas_zero_snr=True,
    ).save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "HunyuanPaintPipeline",
        "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
        "unet": ["modules", "UNet2p5DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder
