"""Loading Hunyuan3D-Paint's multi-view diffusion model from its official diffusers folder.

``tencent/Hunyuan3D-2/hunyuan3d-paint-v2-0`` is a diffusers pipeline folder: ``unet/``
(``config.json`` of the Stable Diffusion 2 UNet the 2.5D model is built from, and the 2.5D
weights in ``diffusion_pytorch_model.bin``), ``vae/`` and ``scheduler/`` (plus a text encoder
and tokenizer the model never uses: its prompt embeddings are learned parameters of the UNet).
We read the UNet weights from safetensors or, for the official ``.bin``, with
``torch.load(weights_only=True)`` (no pickled code), build the UNet on the meta device and
assign the checkpoint tensors (strict: every key present, nothing extra).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from backend.models.common.device_errors import typed_device_errors
from backend.models.hunyuan3d.paint.unet import PaintUNet
from shared_protocol.errors import ErrorCode, ProtocolError

SUBFOLDER = "hunyuan3d-paint-v2-0"
UNET_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
)
DOWNLOAD_HINT = "run `dreamcad-backend download <model id>`"


@dataclass
class PaintModels:
    """The paint model's networks on one device, and its scheduler's config."""

    unet: PaintUNet
    vae: Any  # diffusers AutoencoderKL
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype


def _missing(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.WEIGHTS_MISSING, message, hint=DOWNLOAD_HINT)


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _missing(f"{path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise _missing(f"{path} is not valid JSON: {error}") from error


def read_unet_state(folder: Path) -> dict[str, torch.Tensor]:
    """The 2.5D UNet's tensors from ``folder`` (safetensors first, then the official .bin)."""
    for name in UNET_WEIGHT_NAMES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path), device="cpu")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # truncated or foreign files raise library-specific errors
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING, f"{path} cannot be read: {error}",
                hint="The download is probably incomplete: download the model again.",
            ) from error
    raise _missing(f"no {' or '.join(UNET_WEIGHT_NAMES)} in {folder}")


def build_paint_unet(config: dict[str, Any]) -> PaintUNet:
    """The 2.5D UNet on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return PaintUNet(config)


def load_paint_unet(folder: Path, device: torch.device, dtype: torch.dtype) -> PaintUNet:
    """``folder``: the ``unet/`` subfolder (config.json + weights)."""
    unet = build_paint_unet(read_json(folder / "config.json"))
    state = read_unet_state(folder)
    expected = unet.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise _missing(
            f"{folder}: weights do not match config.json (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]})"
        )
    unet.load_state_dict(state, strict=True, assign=True)
    return unet.to(device=device, dtype=dtype).eval().requires_grad_(False)


def load_paint_models(folder: Path, device: str, dtype: torch.dtype) -> PaintModels:
    """Load the paint model in ``folder`` (the diffusers pipeline folder) onto ``device``."""
    from diffusers import AutoencoderKL

    if not (folder / "unet").is_dir() or not (folder / "vae").is_dir():
        raise _missing(f"{folder} is not the paint model's folder (needs unet/ and vae/)")
    target = torch.device(device)
    with typed_device_errors("hunyuan3d-paint"):
        unet = load_paint_unet(folder / "unet", target, dtype)
        vae = AutoencoderKL.from_pretrained(
            str(folder / "vae"), torch_dtype=dtype, local_files_only=True
        )
        vae = vae.to(target).eval().requires_grad_(False)
    scheduler_config = read_json(folder / "scheduler" / "scheduler_config.json")
    return PaintModels(unet, vae, scheduler_config, target, dtype)
