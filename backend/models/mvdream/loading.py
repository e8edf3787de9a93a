"""Load ``sd-v2.1-base-4view.pt`` unchanged into our UNet, autoencoder and text tower.

The file is read with ``torch.load(weights_only=True, mmap=True)`` (no pickled code runs, and
the 5 GB file is paged in rather than copied); modules are built on the meta device and take
the converted tensors by assignment, so peak host memory stays near one copy of the weights.
Every module loads strictly: a key the converter does not place, or a weight the module lacks,
is an error naming the keys. The checkpoint's own ``alphas_cumprod`` is checked against the
schedule we compute so a checkpoint trained on another schedule is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.models.mvdream.config import MVDreamConfig
from backend.models.mvdream.convert import convert_unet, convert_vae, split_checkpoint, vae_kwargs
from backend.models.mvdream.sampler import alphas_cumprod
from backend.models.mvdream.text_encoder import OpenCLIPTextTower
from backend.models.mvdream.unet import build_unet
from shared_protocol.errors import ErrorCode, ProtocolError


@dataclass
class MVDreamModels:
    unet: Any  # diffusers UNet2DConditionModel with multi-view processors
    vae: Any  # diffusers AutoencoderKL
    text: OpenCLIPTextTower
    config: MVDreamConfig


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's flat state dict (tensors only)."""
    if not path.is_file():
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING, f"mvdream: {path} not found",
            hint="run `dreamcad-backend download mvdream`",
        )
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(state, dict) and "state_dict" in state:  # Lightning-style wrapping
        state = state["state_dict"]
    return state


def _strict_load(module: torch.nn.Module, state: dict[str, torch.Tensor], part: str) -> None:
    expected = set(module.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"mvdream {part}: checkpoint does not match the model "
            f"(missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''})",
            hint="is this sd-v2.1-base-4view.pt with the sd-v2-base config?",
        )
    for name, value in module.state_dict().items():
        if value.shape != state[name].shape:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"mvdream {part}: {name} has shape {tuple(state[name].shape)}, the model "
                f"expects {tuple(value.shape)}",
            )
    module.load_state_dict(state, strict=True, assign=True)


def check_schedule(schedule: dict[str, torch.Tensor], config: MVDreamConfig) -> None:
    if "alphas_cumprod" not in schedule:
        return
    stored = schedule["alphas_cumprod"].float().numpy()
    if stored.shape != (config.timesteps,) or not np.allclose(
        stored, alphas_cumprod(config), rtol=1e-5, atol=1e-7
    ):
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            "mvdream: the checkpoint's noise schedule differs from the sd-v2-base config",
        )


def build_models(
    state: dict[str, torch.Tensor],
    config: MVDreamConfig,
    device: str,
    dtype: torch.dtype,
    num_views: int = 4,
) -> MVDreamModels:
    """Convert ``state`` and load it into freshly built modules on ``device`` in ``dtype``."""
    from diffusers import AutoencoderKL

    parts = split_checkpoint(state)
    check_schedule(parts["schedule"], config)
    unet = build_unet(config, num_views, device="meta")
    _strict_load(unet, convert_unet(parts["unet"], config), "UNet")
    with torch.device("meta"):
        vae = AutoencoderKL(**vae_kwargs(config))
        text = OpenCLIPTextTower(config)
    _strict_load(vae, convert_vae(parts["vae"], config), "autoencoder")
    _strict_load(text, dict(parts["text"]), "text encoder")
    # The causal mask is a non-persistent buffer: rebuild it off the meta device.
    text.attn_mask = torch.full((config.context_length,) * 2, float("-inf")).triu_(1)
    models = MVDreamModels(unet=unet, vae=vae, text=text, config=config)
    for module in (models.unet, models.vae, models.text):
        module.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return models
