"""Strict loading in stored dtypes; what upstream's strict=False would let through."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.models.trellis2.adapter import STEMS
from backend.models.trellis2.loading import load_network
from shared_protocol.errors import ErrorCode, ProtocolError

SS_FLOW = STEMS["sparse_structure_flow_model"]
SHAPE_DECODER = STEMS["shape_slat_decoder"]


def _copy(folder: Path, stem: str, tmp_path: Path) -> Path:
    target = tmp_path / stem
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):
        shutil.copy(folder / f"{stem}{suffix}", target.with_suffix(suffix))
    return target


def test_stored_dtypes_are_kept(tiny_trellis2) -> None:
    flow, _ = load_network(tiny_trellis2[0] / SS_FLOW)
    assert flow.blocks[0].self_attn.to_qkv.weight.dtype == torch.bfloat16
    assert flow.blocks[0].modulation.dtype == torch.float32  # outside the torso cast
    assert flow.input_layer.weight.dtype == torch.float32
    decoder, _ = load_network(tiny_trellis2[0] / SHAPE_DECODER)
    assert decoder.blocks[0][0].conv.weight.dtype == torch.float16
    assert decoder.blocks[0][0].norm.weight.dtype == torch.float32


def test_a_missing_key_is_an_error_naming_it(tiny_trellis2, tmp_path: Path) -> None:
    stem = _copy(tiny_trellis2[0], SHAPE_DECODER, tmp_path)
    state = load_file(str(stem.with_suffix(".safetensors")))
    del state["blocks.0.1.to_subdiv.weight"]
    save_file(state, str(stem.with_suffix(".safetensors")))
    with pytest.raises(ProtocolError) as error:
        load_network(stem)
    assert error.value.code == ErrorCode.MODEL_FAILED
    assert "blocks.0.1.to_subdiv.weight" in str(error.value)


def test_stored_rope_phases_are_checked_then_dropped(tiny_trellis2, tmp_path: Path) -> None:
    stem = _copy(tiny_trellis2[0], SS_FLOW, tmp_path)
    flow, _ = load_network(stem)
    state = load_file(str(stem.with_suffix(".safetensors")))
    phases = flow.derived_buffer("rope_phases")
    # safetensors has no complex dtype: write the buffer's real view, as a converter would
    for value, accepted in ((phases, True), (phases * 1j, False)):
        state["rope_phases"] = torch.view_as_real(value).contiguous()
        save_file(state, str(stem.with_suffix(".safetensors")))
        if accepted:
            load_network(stem)
        else:
            with pytest.raises(ProtocolError, match="rope_phases"):
                load_network(stem)
