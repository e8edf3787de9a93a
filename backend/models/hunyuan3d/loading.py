"""Loading Hunyuan3D-2 shape variants from their official on-disk layout.

A hub repo (``tencent/Hunyuan3D-2mini`` ...) holds one subfolder per variant, e.g.
``hunyuan3d-dit-v2-mini-turbo/`` with ``config.yaml`` and ``model.fp16.safetensors``: one file
whose keys are prefixed by the part they belong to (``model.`` the DiT, ``vae.`` the ShapeVAE,
``conditioner.`` DINOv2). We read safetensors only (no pickles), build the networks on the meta
device from the config (no random init of a billion parameters), then materialise them straight
from the checkpoint tensors on the target device. A standalone VAE folder (the FlashVDM turbo
VAE, ``hunyuan3d-vae-v2-0-turbo/``) has its own ``config.yaml`` and an unprefixed checkpoint;
:func:`find_folder` and :func:`attach_turbo_vae` find it and load it next to a variant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from backend.models.hunyuan3d.conditioner import Conditioner
from backend.models.hunyuan3d.config import ShapeConfig, load_shape_config, load_vae_config
from backend.models.hunyuan3d.dit import Hunyuan3DDiT
from backend.models.hunyuan3d.vae import ShapeVAE
from shared_protocol.errors import ErrorCode, ProtocolError

# Preferred first: the half-precision files are what users download (half the size).
CHECKPOINT_NAMES = ("model.fp16.safetensors", "model.safetensors")
PARTS = ("model", "vae", "conditioner")


@dataclass
class ShapeModels:
    """The three networks of one shape variant, ready on a device."""

    config: ShapeConfig
    dit: Hunyuan3DDiT
    vae: ShapeVAE
    conditioner: Conditioner
    device: torch.device
    dtype: torch.dtype
    # FlashVDM's distilled decoder, when the adapter found and loaded it.
    turbo_vae: ShapeVAE | None = None


def find_checkpoint(folder: Path) -> Path:
    for name in CHECKPOINT_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise ProtocolError(
        ErrorCode.WEIGHTS_MISSING,
        f"no {' or '.join(CHECKPOINT_NAMES)} in {folder}",
        hint="run `dreamcad-backend download <model id>` (only safetensors checkpoints load)",
    )


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors checkpoint -> {key: tensor} (on the CPU)."""
    try:
        flat = load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own error types for bad headers
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{path} is not a readable safetensors file: {error}",
            hint="The download is probably incomplete: download the model again.",
        ) from error
    return flat


def split_checkpoint(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Read a prefixed checkpoint -> {part: {key without prefix: tensor}} (on the CPU)."""
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in read_checkpoint(path).items():
        part, _, rest = key.partition(".")
        parts.setdefault(part, {})[rest] = tensor
    return parts


def build_networks(config: ShapeConfig) -> tuple[Hunyuan3DDiT, ShapeVAE, Conditioner]:
    """The three networks on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return Hunyuan3DDiT(config.dit), ShapeVAE(config.vae), Conditioner(config.conditioner)


def materialise(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    device: torch.device,
    dtype: torch.dtype,
    part: str,
    source: Path,
) -> None:
    """Fill a meta-built ``module`` from ``state`` on ``device`` in ``dtype`` (strict keys)."""
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{source}: part {part!r} does not match its config "
            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})",
            hint="The checkpoint and config.yaml come from different variants: download again.",
        )
    module.to_empty(device=device)
    with torch.no_grad():
        for name, target in module.state_dict(keep_vars=True).items():
            tensor = state[name]
            if tensor.shape != target.shape:
                raise ProtocolError(
                    ErrorCode.WEIGHTS_MISSING,
                    f"{source}: {part}.{name} is {tuple(tensor.shape)}, "
                    f"the config expects {tuple(target.shape)}",
                )
            target.copy_(tensor)
    # Constant buffers are not in checkpoints: recompute them, then cast with the weights
    # (upstream casts them too, e.g. the Fourier frequencies run in half precision).
    for child in module.modules():
        reset = getattr(child, "reset_buffers", None)
        if reset is not None:
            reset()
    module.to(dtype=dtype)
    module.eval().requires_grad_(False)


def load_shape_models(folder: Path, device: str, dtype: torch.dtype) -> ShapeModels:
    """Load the variant in ``folder`` (config.yaml + checkpoint) onto ``device``."""
    config = load_shape_config(folder / "config.yaml")
    checkpoint = find_checkpoint(folder)
    parts = split_checkpoint(checkpoint)
    dit, vae, conditioner = build_networks(config)
    target = torch.device(device)
    for name, module in zip(PARTS, (dit, vae, conditioner), strict=True):
        state = parts.get(name)
        if state is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{checkpoint} has no {name!r} weights",
                hint="download the model again",
            )
        materialise(module, state, target, dtype, name, checkpoint)
    return ShapeModels(config, dit, vae, conditioner, target, dtype)


def load_vae(
    folder: Path, device: torch.device, dtype: torch.dtype, latents: ShapeConfig
) -> ShapeVAE:
    """Load a standalone ShapeVAE folder (config.yaml + unprefixed checkpoint) that must decode
    the latents of the variant configured by ``latents``."""
    config = load_vae_config(folder / "config.yaml")
    expected = (latents.vae.num_latents, latents.vae.embed_dim)
    if (config.num_latents, config.embed_dim) != expected:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{folder} decodes latents of shape {(config.num_latents, config.embed_dim)}, "
            f"the shape model makes {expected}",
            hint="The VAE folder belongs to another model: download the model's own again.",
        )
    checkpoint = find_checkpoint(folder)
    with torch.device("meta"):
        vae = ShapeVAE(config)
    materialise(vae, read_checkpoint(checkpoint), device, dtype, "vae", checkpoint)
    return vae


def find_folder(bases: Iterable[Path | None], name: str) -> Path | None:
    """The first ``base / name`` holding a ``config.yaml`` (None when none holds it)."""
    for base in bases:
        if base is not None and (base / name / "config.yaml").is_file():
            return base / name
    return None


def attach_turbo_vae(models: ShapeModels, bases: Iterable[Path | None], name: str) -> bool:
    """Load FlashVDM's turbo VAE (folder ``name`` in the first of ``bases`` that has it: its
    ``turbo-vae`` component dir, or a full clone of the repo) into ``models`` once; it stays
    with the variant (the pipeline decodes ``decoding="flashvdm"`` with it) until the variant
    goes. False when no base has it."""
    if models.turbo_vae is None:
        folder = find_folder(bases, name)
        if folder is None:
            return False
        models.turbo_vae = load_vae(folder, models.device, models.dtype, models.config)
    return True
