"""Loading: full-size key manifests on the meta device, and the errors of bad weight folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from backend.models.hunyuan3d.config import parse_shape_config
from backend.models.hunyuan3d.loading import build_networks, load_shape_models, load_vae
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.hunyuan3d.conftest import (
    DATA,
    load_reference,
    write_reference_vae,
    write_reference_variant,
)

MANIFEST = json.loads((DATA / "full_size_manifest.json").read_text())


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {key: list(value.shape) for key, value in module.state_dict().items()}


@pytest.mark.parametrize("variant", sorted(MANIFEST["configs"]))
def test_full_size_networks_match_the_official_keys(variant: str) -> None:
    """Names and shapes of hy3dgen's full-size networks (built on meta: no memory)."""
    dit, vae, conditioner = build_networks(parse_shape_config(MANIFEST["configs"][variant]))
    parts = MANIFEST["parts"][variant]
    assert shapes(dit) == parts["model"]
    assert shapes(vae) == parts["vae"]
    if "conditioner" in parts:
        assert shapes(conditioner) == parts["conditioner"]


def test_checkpoint_of_another_variant_is_refused(tmp_path: Path) -> None:
    plain = write_reference_variant(load_reference("plain"), tmp_path / "plain")
    turbo = write_reference_variant(load_reference("turbo"), tmp_path / "turbo")
    (plain / "model.fp16.safetensors").replace(tmp_path / "plain.safetensors")
    # turbo has guidance_in
    (turbo / "model.fp16.safetensors").rename(plain / "model.fp16.safetensors")
    with pytest.raises(ProtocolError) as error:
        load_shape_models(plain, "cpu", torch.float32)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    assert "guidance_in" in str(error.value)


def test_missing_files_and_pickles(tmp_path: Path) -> None:
    folder = write_reference_variant(load_reference("plain"), tmp_path / "v")
    (folder / "model.fp16.safetensors").rename(folder / "model.fp16.ckpt")
    with pytest.raises(ProtocolError, match="safetensors") as error:
        load_shape_models(folder, "cpu", torch.float32)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    (folder / "config.yaml").unlink()
    with pytest.raises(ProtocolError, match="config"):
        load_shape_models(folder, "cpu", torch.float32)


def test_truncated_checkpoint_is_reported(tmp_path: Path) -> None:
    folder = write_reference_variant(load_reference("plain"), tmp_path / "v")
    data = (folder / "model.fp16.safetensors").read_bytes()
    (folder / "model.fp16.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ProtocolError, match="not a readable safetensors") as error:
        load_shape_models(folder, "cpu", torch.float32)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING


def test_wrong_shape_is_reported(tmp_path: Path) -> None:
    reference = load_reference("plain")
    folder = write_reference_variant(reference, tmp_path / "v")
    raw = yaml.safe_load((folder / "config.yaml").read_text())
    raw["vae"]["params"]["num_freqs"] = 6  # query_proj input width changes
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ProtocolError, match="query_proj"):
        load_shape_models(folder, "cpu", torch.float32)


def test_unknown_config_parameter_is_refused() -> None:
    raw = dict(MANIFEST["configs"]["hunyuan3d-dit-v2-mini"])
    raw["vae"] = {"params": {**raw["vae"]["params"], "surprise": 1}}
    with pytest.raises(ProtocolError, match="surprise"):
        parse_shape_config(raw)


def test_half_precision_load_keeps_keys(tmp_path: Path) -> None:
    reference = load_reference("plain")
    folder = write_reference_variant(reference, tmp_path / "v")
    weights = {
        k[len("weight:") :]: torch.from_numpy(v).half()
        for k, v in reference.items()
        if k.startswith("weight:")
    }
    save_file(weights, str(folder / "model.fp16.safetensors"))
    models = load_shape_models(folder, "cpu", torch.bfloat16)
    assert models.dit.latent_in.weight.dtype == torch.bfloat16
    assert models.vae.fourier_embedder.frequencies.dtype == torch.bfloat16


def test_vae_of_another_latent_shape_is_refused(tmp_path: Path) -> None:
    flash = load_reference("flashvdm")
    folder = write_reference_vae(flash, tmp_path / "hunyuan3d-vae-v2-0-turbo")
    config = (folder / "config.yaml").read_text(encoding="utf-8")
    (folder / "config.yaml").write_text(config.replace("num_latents: 16", "num_latents: 32"))
    plain = write_reference_variant(load_reference("plain"), tmp_path / "v")
    models = load_shape_models(plain, "cpu", torch.float32)
    with pytest.raises(ProtocolError) as error:
        load_vae(folder, models.device, models.dtype, models.config)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING and "latents" in str(error.value)
