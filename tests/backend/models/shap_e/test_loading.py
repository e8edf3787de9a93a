"""Loading tiny Shap-E folders through the real from_pretrained path, and folder errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.models.shap_e.config import IMAGE_PIPELINE, TEXT_PIPELINE, ShapEConfig
from backend.models.shap_e.loading import load_shap_e
from backend.models.shap_e.marching_tables import shap_e_mc_tables
from shared_protocol.errors import ErrorCode, ProtocolError


def test_folder_is_laid_out_like_the_hub(shap_e_text_dir: Path) -> None:
    for path in (
        "model_index.json",
        "prior/diffusion_pytorch_model.bin",
        "shap_e_renderer/diffusion_pytorch_model.bin",
        "text_encoder/pytorch_model.bin",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
    ):
        assert (shap_e_text_dir / path).is_file(), path
    index = json.loads((shap_e_text_dir / "model_index.json").read_text())
    assert index["renderer"] == ["shap_e", "ShapERenderer"]  # the hub's legacy entry


def test_config_reads_the_component_shapes(shap_e_text_dir: Path) -> None:
    config = ShapEConfig.from_folder(shap_e_text_dir, "shap-e")
    assert config.pipeline_class == TEXT_PIPELINE
    assert config.latent_tokens == 4 * config.mlp_width


def test_load_keeps_the_checkpoint_tables(shap_e_text_dir: Path) -> None:
    pipeline, _, warnings = load_shap_e(shap_e_text_dir, "shap-e", TEXT_PIPELINE, "cpu",
                                        "float32")
    cases, masks = shap_e_mc_tables()
    assert warnings == []
    np.testing.assert_array_equal(pipeline.shap_e_renderer.mesh_decoder.cases.numpy(), cases)
    np.testing.assert_array_equal(pipeline.shap_e_renderer.mesh_decoder.masks.numpy(), masks)


def test_empty_tables_are_repaired_with_a_warning(shap_e_text_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(shap_e_text_dir, folder)
    weights = folder / "shap_e_renderer" / "diffusion_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["mesh_decoder.cases"].zero_()
    state["mesh_decoder.masks"].zero_()
    torch.save(state, weights)
    pipeline, _, warnings = load_shap_e(folder, "shap-e", TEXT_PIPELINE, "cpu", "float32")
    assert len(warnings) == 1 and "marching-cubes" in warnings[0]
    assert pipeline.shap_e_renderer.mesh_decoder.masks.any()


def test_wrong_pipeline_kind_is_named(shap_e_text_dir: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        load_shap_e(shap_e_text_dir, "shap-e-img2img", IMAGE_PIPELINE, "cpu", "float32")
    assert caught.value.code == ErrorCode.MODEL_FAILED


def test_missing_folder_and_component(shap_e_text_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        ShapEConfig.from_folder(tmp_path, "shap-e")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    folder = tmp_path / "partial"
    shutil.copytree(shap_e_text_dir, folder)
    shutil.rmtree(folder / "prior")
    with pytest.raises(ProtocolError) as caught:
        ShapEConfig.from_folder(folder, "shap-e")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING and "prior" in str(caught.value)


def test_renderer_stays_float32_under_half_precision(shap_e_text_dir: Path) -> None:
    pipeline, _, _ = load_shap_e(shap_e_text_dir, "shap-e", TEXT_PIPELINE, "cpu", "bfloat16")
    assert next(pipeline.prior.parameters()).dtype == torch.bfloat16
    assert next(pipeline.shap_e_renderer.parameters()).dtype == torch.float32
