"""Tiny random Hunyuan3D-2 weights in the official hub layout, for tests and smoke benchmarks.

:func:`write_tiny_weights` writes what ``dreamcad-backend download ID`` fetches (the turbo
variant's ``config.yaml`` + ``model.fp16.safetensors``, one checkpoint with ``model.``,
``vae.`` and ``conditioner.`` prefixed keys) at the sizes of :func:`config.tiny_raw_config`;
:func:`write_tiny_components` the ``turbo-vae`` (a standalone VAE folder, unprefixed keys) and
``paint`` (delight + paint diffusers folders) components. :func:`write_variant` and
:func:`write_vae` write given weights in the same layouts (the parity tests feed them the
reference weights of tests/data/hunyuan; the benchmarks full-size random ones from
:func:`random_state`). Production code never imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from backend.models.hunyuan3d.adapter import (
    DELIGHT_FOLDER,
    PAINT_FOLDER,
    Hunyuan3D2Adapter,
    Hunyuan3D2MiniAdapter,
    Hunyuan3D2MVAdapter,
    Hunyuan3DShapeAdapter,
)
from backend.models.hunyuan3d.config import parse_shape_config, tiny_raw_config, tiny_vae_params
from backend.models.hunyuan3d.loading import build_networks
from backend.models.hunyuan3d.vae import ShapeVAE

ADAPTERS: dict[str, type[Hunyuan3DShapeAdapter]] = {
    cls.id: cls for cls in (Hunyuan3D2MiniAdapter, Hunyuan3D2Adapter, Hunyuan3D2MVAdapter)
}
# The checkpoint name upstream ships (half precision); the tiny files keep float32 content
# under it, as the loader casts to the requested dtype anyway.
CHECKPOINT = "model.fp16.safetensors"

# A fast minimal request on the CPU (a second or two): 2 sampling steps, a 33^3 dense grid.
_TINY = {"steps": 2, "octree_resolution": 32, "num_chunks": 4096, "decoding": "dense"}
TINY_PARAMETERS: dict[str, dict[str, Any]] = {model_id: dict(_TINY) for model_id in ADAPTERS}


def write_tiny_weights(
    folder: Path, model_id: str, variants: tuple[str, ...] = ("turbo",), seed: int = 0
) -> Path:
    """Tiny random weights of ``model_id`` as its hub repo lays them out -> the weights dir.

    ``variants``: which variant folders to write (the declared download is the turbo one;
    add "standard" / "fast" to test variant switching)."""
    adapter = ADAPTERS[model_id]
    multi_view = adapter.max_images > 1
    for index, variant in enumerate(variants):
        raw = tiny_raw_config(variant, multi_view)
        state = smooth_field(random_state(raw, seed + index))
        write_variant(folder / adapter.variant_folder(variant), raw, state)
    return folder


def write_tiny_components(folder: Path, model_id: str) -> dict[str, Path]:
    """Tiny ``turbo-vae`` and ``paint`` components of ``model_id`` -> {name: component dir}.

    Each dir holds the component's files at their hub paths, as the registry finds them."""
    from backend.models.testing.hunyuan_paint import write_tiny_paint_model
    from backend.models.testing.instruct_pix2pix import write_tiny_instruct_pix2pix

    adapter = ADAPTERS[model_id]
    turbo, paint = folder / "turbo-vae", folder / "paint"
    vae_raw = {"target": "hy3dgen.shapegen.models.ShapeVAE", "params": tiny_vae_params()}
    write_vae(turbo / adapter.turbo_vae_folder, vae_raw, random_vae_state(vae_raw))
    write_tiny_instruct_pix2pix(paint / DELIGHT_FOLDER)
    write_tiny_paint_model(paint / PAINT_FOLDER)
    return {"turbo-vae": turbo, "paint": paint}


def write_variant(
    folder: Path, config: dict[str, Any] | str, state: dict[str, torch.Tensor],
    checkpoint: str = CHECKPOINT,
) -> Path:
    """A variant folder: ``config.yaml`` (a mapping, or YAML text as stored) + the checkpoint
    (``state`` under the official prefixed keys, written as given)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / checkpoint))
    return folder


def write_vae(
    folder: Path, config: dict[str, Any] | str, state: dict[str, torch.Tensor],
    checkpoint: str = CHECKPOINT,
) -> Path:
    """A standalone VAE folder (the FlashVDM turbo VAE's layout: ``target`` and ``params`` at
    the top of config.yaml, unprefixed keys)."""
    return write_variant(folder, config, state, checkpoint)


def random_state(raw: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 weights for the config ``raw`` under the official prefixed keys.

    Matrices scaled by 1/sqrt(fan-in) and norm gains near 1, so activations stay in range at
    any size (the benchmarks use it at full size)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    networks = build_networks(parse_shape_config(raw))
    for prefix, module in zip(("model", "vae", "conditioner"), networks, strict=True):
        for key, value in module.state_dict().items():
            state[f"{prefix}.{key}"] = _random_like(key, value, generator)
    return state


def random_vae_state(raw: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights for a standalone VAE folder's config (unprefixed keys)."""
    from backend.models.hunyuan3d.config import VaeConfig

    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        vae = ShapeVAE(VaeConfig(**raw["params"]))
    return {key: _random_like(key, value, generator) for key, value in vae.state_dict().items()}


def _random_like(key: str, value: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    fan_in = value.shape[-1] if value.ndim > 1 else 1
    scale = 1.0 / np.sqrt(fan_in) if value.ndim > 1 else 0.02
    tensor = torch.randn(value.shape, generator=generator) * scale
    if value.ndim == 1 and key.endswith(("weight", "scale")):  # norm gains
        tensor = 1 + tensor
    return tensor


def smooth_field(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Make the VAE's occupancy a smooth function of position (in place; returns ``state``).

    Random weights give a noise field whose marching cubes dwarfs everything else (and may
    have no surface at all): the decoder's residual cross-attention branches are zeroed and its
    query projection kept to the xyz inputs, so the field has a surface whatever the latents,
    while every matrix multiply still runs at full size."""
    for key in list(state):
        if key.startswith("vae.geo_decoder.cross_attn_decoder") and key.endswith(
            ("c_proj.weight", "c_proj.bias")
        ):
            state[key].zero_()
    state["vae.geo_decoder.query_proj.weight"][:, 3:] = 0
    state["vae.geo_decoder.output_proj.bias"].fill_(0.3)
    return state
