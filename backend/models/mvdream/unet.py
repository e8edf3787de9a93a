"""The MVDream UNet as a diffusers ``UNet2DConditionModel`` plus multi-view attention.

Upstream's ``MultiViewUNetModel`` is the SD 2.1 UNet (linear transformer projections, 64-wide
heads, 1024-d OpenCLIP context) with two additions, both expressible in diffusers' own blocks:
the camera MLP (16 -> 4C -> 4C, SiLU) whose output is added to the time embedding, which is
diffusers' ``class_embed_type="projection"``; and self-attention across the views, which is
:class:`MultiViewAttnProcessor` on every ``attn1``. Building on diffusers' blocks gives the
fused attention kernels and fp16 paths for free; the checkpoint's LDM key layout is converted
at load time (see convert.py).
"""

from __future__ import annotations

import torch

from backend.models.mvdream.attention import MultiViewAttnProcessor
from backend.models.mvdream.config import MVDreamConfig


def unet_kwargs(config: MVDreamConfig) -> dict:
    """``UNet2DConditionModel`` arguments equivalent to the upstream UNet config."""
    widths = tuple(config.model_channels * m for m in config.channel_mult)
    levels = config.attention_levels
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(levels))
    return {
        "sample_size": 32,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "block_out_channels": widths,
        "down_block_types": down,
        "up_block_types": up,
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "layers_per_block": config.num_res_blocks,
        "cross_attention_dim": config.context_dim,
        # diffusers' "attention_head_dim" is the number of heads per level (an old misnomer).
        "attention_head_dim": tuple(w // config.num_head_channels for w in widths),
        "use_linear_projection": True,
        "norm_num_groups": config.norm_groups,
        "norm_eps": 1e-5,
        "flip_sin_to_cos": True,  # LDM's embedding is [cos, sin]
        "freq_shift": 0,
        "class_embed_type": "projection",
        "projection_class_embeddings_input_dim": config.camera_dim,
    }


def build_unet(config: MVDreamConfig, num_views: int = 4, device: str | torch.device = "cpu"):
    """An uninitialised-weights MVDream UNet (load the checkpoint into it)."""
    from diffusers import UNet2DConditionModel

    with torch.device(device):
        unet = UNet2DConditionModel(**unet_kwargs(config))
    set_num_views(unet, num_views)
    return unet


def set_num_views(unet, num_views: int) -> None:
    """Make every self-attention attend across ``num_views`` consecutive images."""
    processors = {}
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            processors[name] = MultiViewAttnProcessor(num_views)
        else:
            processors[name] = unet.attn_processors[name]
    unet.set_attn_processor(processors)
