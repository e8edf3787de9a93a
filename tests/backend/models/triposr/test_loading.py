"""Checkpoint loading: the official key layout at full size, strict loading, both file formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.loading import (
    build_empty,
    find_model_files,
    load_model,
    read_state_dict,
    write_model_folder,
)
from backend.models.triposr.testing import tiny_config
from shared_protocol.errors import ErrorCode, ProtocolError

MANIFEST = Path(__file__).parents[3] / "data" / "triposr" / "key_manifest.json"


def test_full_size_keys_and_shapes_equal_the_official_checkpoint() -> None:
    manifest = json.loads(MANIFEST.read_text())
    config = TripoSRConfig.from_dict(manifest["config"])
    ours = {key: list(value.shape) for key, value in build_empty(config).state_dict().items()}
    assert sorted(set(manifest["keys"]) - set(ours)) == []
    assert sorted(set(ours) - set(manifest["keys"])) == []
    assert {k: v for k, v in ours.items() if manifest["keys"][k] != v} == {}
    assert sum(torch.Size(s).numel() for s in ours.values()) == manifest["parameter_count"]


def test_official_sizes_are_the_defaults() -> None:
    manifest = json.loads(MANIFEST.read_text())
    assert TripoSRConfig.from_dict(manifest["config"]) == TripoSRConfig()


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_round_trip_loads_strictly(tmp_path: Path, tiny: TripoSRConfig, tiny_state: dict,
                                   fmt: str) -> None:
    write_model_folder(tmp_path, tiny, tiny_state, fmt=fmt)
    model = load_model(tmp_path)
    assert model.config == tiny
    for key, value in model.state_dict().items():
        assert torch.equal(value, tiny_state[key]), key


def test_ckpt_is_a_flat_weights_only_state_dict(tiny_folder: Path) -> None:
    state = torch.load(tiny_folder / "model.ckpt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert "image_tokenizer.model.embeddings.cls_token" in state


def test_missing_folder_or_files_is_weights_missing(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as error:
        find_model_files(None)
    assert error.value.code is ErrorCode.WEIGHTS_MISSING
    with pytest.raises(ProtocolError) as error:
        find_model_files(tmp_path)
    assert error.value.code is ErrorCode.WEIGHTS_MISSING
    assert "download triposr" in (error.value.hint or "")


def test_mismatched_checkpoint_names_the_bad_keys(tmp_path: Path, tiny_state: dict) -> None:
    state = dict(tiny_state)
    state.pop("decoder.layers.0.bias")
    state["decoder.extra"] = torch.zeros(1)
    state["post_processor.upsample.bias"] = torch.zeros(3)
    write_model_folder(tmp_path, tiny_config(), state)
    with pytest.raises(ProtocolError) as error:
        load_model(tmp_path)
    message = str(error.value)
    assert error.value.code is ErrorCode.MODEL_FAILED
    assert "decoder.layers.0.bias" in message and "decoder.extra" in message
    assert "post_processor.upsample.bias" in message


def test_damaged_checkpoint_is_a_clear_error(tiny_folder: Path) -> None:
    (tiny_folder / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ProtocolError) as error:
        read_state_dict(tiny_folder / "model.ckpt")
    assert error.value.code is ErrorCode.MODEL_FAILED


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"weights": torch.zeros(1), "object": Path("x")}, path)
    with pytest.raises(ProtocolError):
        read_state_dict(path)
