"""Key conversion against upstream's full-size key manifest (meta device: no memory)."""

from __future__ import annotations

import json

import pytest
import torch

from backend.models.mvdream.config import SD21_BASE_4VIEW, TINY
from backend.models.mvdream.convert import (
    convert_unet,
    convert_vae,
    split_checkpoint,
    vae_kwargs,
)
from backend.models.mvdream.text_encoder import OpenCLIPTextTower
from backend.models.mvdream.unet import build_unet

from .conftest import DATA


def _manifest_state(name: str) -> dict[str, torch.Tensor]:
    entries = json.loads((DATA / name).read_text())
    return {e["name"]: torch.empty(e["shape"], device="meta") for e in entries}


@pytest.mark.parametrize("config,manifest", [(SD21_BASE_4VIEW, "full_manifest.json"),
                                             (TINY, "tiny_manifest.json")])
def test_every_checkpoint_key_lands_on_a_parameter_of_the_right_shape(config, manifest) -> None:
    from diffusers import AutoencoderKL

    parts = split_checkpoint(_manifest_state(manifest))
    assert not parts["other"], sorted(parts["other"])[:5]
    with torch.device("meta"):
        modules = {
            "unet": (build_unet(config, device="meta"), convert_unet(parts["unet"], config)),
            "vae": (AutoencoderKL(**vae_kwargs(config)), convert_vae(parts["vae"], config)),
            "text": (OpenCLIPTextTower(config), parts["text"]),
        }
    for part, (module, converted) in modules.items():
        ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in converted.items()}
        assert set(ours) == set(theirs), (part, sorted(set(ours) ^ set(theirs))[:6])
        assert ours == theirs, part


def test_full_size_parameter_count() -> None:
    # SD 2.1-base UNet (865.9M) + the camera MLP (16*1280 + 1280 + 1280*1280 + 1280).
    unet = build_unet(SD21_BASE_4VIEW, device="meta")
    count = sum(p.numel() for p in unet.parameters())
    assert count == 865_910_724 + 16 * 1280 + 1280 + 1280 * 1280 + 1280


def test_unknown_key_is_refused() -> None:
    with pytest.raises(KeyError, match="no diffusers counterpart"):
        convert_unet({"input_blocks.99.0.in_layers.0.weight": torch.empty(1)}, TINY)
