"""Tiny random text-to-image pipelines in the diffusers hub layout, for tests and benchmarks.

For tests only; production code never imports this module. :func:`write_tiny_weights` writes
the bridge's own weights as ``stabilityai/sdxl-turbo`` lays them out (a
``StableDiffusionXLPipeline``: two CLIP text encoders and tokenizers, a UNet with SDXL's
text-time conditioning, a VAE, Euler-ancestral with trailing steps; half-precision
``*.fp16.safetensors`` files only), a few thousand weights in all.
:func:`write_tiny_stable_diffusion` writes a Stable Diffusion 1.x/2.x-style pipeline, the
"any diffusers pipeline" a request can name in ``text_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backend.models.testing.clip_tokenizer import write_clip_tokenizer

# A request that runs in about a second on a CPU: one picture step at 32 px, then inflate
# (no download) on the picture as it comes, since a random picture has no subject to cut out.
TINY_PARAMETERS: dict[str, dict[str, Any]] = {
    "image-bridge": {"steps": 1, "image_size": 32, "image_model": "inflate",
                     "background": "none"},
}
TEXT_WIDTH = 16  # each tiny text encoder's width; the UNet attends to both, concatenated
TIME_EMBED = 4  # SDXL's per-number size of the size/crop conditioning (6 numbers)


def write_tiny_weights(folder: Path, model_id: str = "image-bridge", seed: int = 0) -> Path:
    """A tiny random SDXL-Turbo in its hub layout (fp16 variant files) in ``folder``."""
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if model_id != "image-bridge":
        raise KeyError(f"no image-bridge model {model_id!r}; this family has image-bridge")
    torch.manual_seed(seed)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2")
    unet = UNet2DConditionModel(
        sample_size=16, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
        cross_attention_dim=2 * TEXT_WIDTH, attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED,
        # the pooled second text embedding, then six size/crop numbers of TIME_EMBED each
        projection_class_embeddings_input_dim=TEXT_WIDTH + 6 * TIME_EMBED,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    pipeline = StableDiffusionXLPipeline(
        vae=_tiny_vae(levels=2), unet=unet, scheduler=_turbo_scheduler(),
        text_encoder=CLIPTextModel(_text_config(vocab_size)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(vocab_size)),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"),
    )
    pipeline.to(torch.float16).save_pretrained(folder, variant="fp16")
    # The hub keeps the tokenizers' special_tokens_map.json, which save_pretrained may not.
    write_clip_tokenizer(folder / "tokenizer")
    write_clip_tokenizer(folder / "tokenizer_2")
    return folder


def write_tiny_stable_diffusion(folder: Path, seed: int = 0, sample_size: int = 16) -> Path:
    """Save a StableDiffusionPipeline of a few thousand weights; images are 8x ``sample_size``."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    vocab_size = write_clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=sample_size, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, cross_attention_dim=TEXT_WIDTH, attention_head_dim=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    pipeline = StableDiffusionPipeline(
        unet=unet, vae=_tiny_vae(levels=4), text_encoder=CLIPTextModel(_text_config(vocab_size)),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        scheduler=_turbo_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder


def _text_config(vocab_size: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TEXT_WIDTH, intermediate_size=2 * TEXT_WIDTH,
        projection_dim=TEXT_WIDTH, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
    )


def _tiny_vae(levels: int):
    """An AutoencoderKL shrinking by 2 ** (levels - 1)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(4, *(8,) * (levels - 1)), norm_num_groups=4, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
    )


def _turbo_scheduler():
    from diffusers import EulerAncestralDiscreteScheduler

    # sdxl-turbo's scheduler: Euler ancestral with trailing timesteps (good at 1-4 steps).
    return EulerAncestralDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
        timestep_spacing="trailing", steps_offset=1,
    )
