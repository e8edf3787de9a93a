"""A tiny random InstructPix2Pix pipeline in the diffusers hub layout (the delight model's).

Same parts as ``tencent/Hunyuan3D-2/hunyuan3d-delight-v2-0``: a UNet taking 8 latent channels
(noisy latents + the input image's latents), a VAE, a CLIP text encoder and tokenizer (built
locally, no hub) and a scheduler, saved with ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from backend.models.testing.clip_tokenizer import write_clip_tokenizer


def write_tiny_instruct_pix2pix(folder: Path, seed: int = 0) -> Path:
    """Save a StableDiffusionInstructPix2PixPipeline of a few thousand random weights."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=8, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, cross_attention_dim=16, attention_head_dim=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    vae = AutoencoderKL(
        block_out_channels=(4, 8), norm_num_groups=4, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32,
                       num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                       bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1)
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    )
    pipeline = StableDiffusionInstructPix2PixPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"), scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder
