"""Tiny random TripoSR models in the official layout, for tests and ``--tiny`` benchmark runs.

:func:`write_tiny_weights` writes ``config.yaml`` + ``model.ckpt`` (and the tiny ViT's
``config.json``, which the config names by a relative path) exactly as ``stabilityai/TripoSR``
lays them out, so they go through the production loader. :data:`TINY_PARAMETERS` is a request
that runs on a CPU in well under a second. Production code never imports this module.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from backend.models.triposr.config import TripoSRConfig, VitConfig
from backend.models.triposr.loading import build_empty, write_model_folder

MODEL_ID = "triposr"
TINY_SEED = 0
# Weight scale of the tiny model written for requests: at 1.5 the random density field spans
# e^-20 .. e^20 over the grid for any framed image, so TINY_PARAMETERS' fixed threshold (1.0,
# the field's middle) always crosses it; at random_state's default 0.5 the field is flat.
TINY_SCALE = 1.5

TINY_PARAMETERS: dict[str, dict[str, Any]] = {
    MODEL_ID: {"mc_resolution": 16, "chunk_size": 1024, "density_threshold": 1.0},
}


def tiny_config(**overrides: Any) -> TripoSRConfig:
    """A few-thousand-parameter TripoSR (same layout as the official one, tiny sizes)."""
    vit = VitConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        image_size=32, patch_size=8,
    )
    base = TripoSRConfig(
        cond_image_size=64, vit=vit, vit_name="dino-tiny", plane_size=4, token_channels=32,
        num_attention_heads=2, attention_head_dim=16, num_layers=2, cross_attention_dim=32,
        norm_num_groups=8, triplane_channels=8, decoder_in_channels=24, decoder_neurons=16,
        decoder_hidden_layers=3,
    )
    return replace(base, **overrides)


def random_state(
    config: TripoSRConfig, seed: int = 0, scale: float = 0.5
) -> dict[str, torch.Tensor]:
    """Random weights in the official key layout (never a real model).

    Normal(0, scale / sqrt(fan_in)) for matrices, so activations keep their size at any width
    when scale is about 1; norm weights near one.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in build_empty(config).state_dict().items():
        if key.endswith("weight") and tensor.ndim == 1:  # layer/group norm gains
            values = 1.0 + 0.1 * torch.randn(tensor.shape, generator=generator)
        else:
            fan_in = tensor[0].numel() if tensor.ndim > 1 else tensor.shape[-1]
            std = scale / max(1.0, fan_in) ** 0.5 if tensor.ndim > 1 else 0.05
            values = std * torch.randn(tensor.shape, generator=generator)
        state[key] = values.to(tensor.dtype)
    return state


def write_tiny_weights(folder: Path, model_id: str = MODEL_ID) -> Path:
    """Write a tiny random TripoSR under ``folder`` in the official layout; its weights dir."""
    if model_id != MODEL_ID:
        raise ValueError(f"the triposr family has no model {model_id!r}")
    config = tiny_config()
    weights_dir = Path(folder) / model_id
    write_model_folder(weights_dir, config, random_state(config, TINY_SEED, TINY_SCALE))
    return weights_dir
