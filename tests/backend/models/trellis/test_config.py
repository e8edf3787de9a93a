"""config.py: the official pipeline.json and checkpoint JSONs read into dataclasses and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.models.trellis.config import (
    PipelineConfig,
    SLatDecoderConfig,
    SLatFlowConfig,
    SSDecoderConfig,
    SSFlowConfig,
    network_spec_from_dict,
    network_spec_to_dict,
    read_network_spec,
    read_pipeline_config,
)
from shared_protocol.errors import ErrorCode, ProtocolError

# The released image pipeline.json (research 1.0, as published on the hub).
SAMPLER = {
    "name": "FlowEulerGuidanceIntervalSampler",
    "args": {"sigma_min": 1e-5},
    "params": {"steps": 25, "cfg_strength": 5.0, "cfg_interval": [0.5, 1.0], "rescale_t": 3.0},
}
IMAGE_PIPELINE = {
    "name": "TrellisImageTo3DPipeline",
    "args": {
        "models": {
            "sparse_structure_decoder": "ckpts/ss_dec_conv3d_16l8_fp16",
            "sparse_structure_flow_model": "ckpts/ss_flow_img_dit_L_16l8_fp16",
            "slat_decoder_gs": "ckpts/slat_dec_gs_swin8_B_64l8gs32_fp16",
            "slat_decoder_rf": "ckpts/slat_dec_rf_swin8_B_64l8r16_fp16",
            "slat_decoder_mesh": "ckpts/slat_dec_mesh_swin8_B_64l8m256c_fp16",
            "slat_flow_model": "ckpts/slat_flow_img_dit_L_64l8p2_fp16",
        },
        "sparse_structure_sampler": SAMPLER,
        "slat_sampler": SAMPLER,
        "slat_normalization": {"mean": [-2.17, 0.0, -0.13, -0.08, -0.53, 0.72, -1.14, 1.2],
                               "std": [2.38, 2.39, 2.12, 2.17, 2.66, 2.37, 2.62, 2.68]},
        "image_cond_model": "dinov2_vitl14_reg",
    },
}  # fmt: skip
# The released checkpoints' JSONs (research 1.0 table; text XL from upstream's configs).
SS_FLOW_L = {"name": "SparseStructureFlowModel", "args": {
    "resolution": 16, "in_channels": 8, "out_channels": 8, "model_channels": 1024,
    "cond_channels": 1024, "num_blocks": 24, "num_heads": 16, "mlp_ratio": 4, "patch_size": 1,
    "pe_mode": "ape", "qk_rms_norm": True, "use_fp16": True}}  # fmt: skip
SS_FLOW_XL = {"name": "SparseStructureFlowModel", "args": {
    "resolution": 16, "in_channels": 8, "out_channels": 8, "model_channels": 1280,
    "cond_channels": 768, "num_blocks": 28, "num_heads": 16, "mlp_ratio": 4, "patch_size": 1,
    "pe_mode": "ape", "qk_rms_norm": True, "qk_rms_norm_cross": True,
    "use_fp16": True}}  # fmt: skip
SS_DECODER = {"name": "SparseStructureDecoder", "args": {
    "out_channels": 1, "latent_channels": 8, "num_res_blocks": 2, "num_res_blocks_middle": 2,
    "channels": [512, 128, 32], "use_fp16": True}}  # fmt: skip
SLAT_FLOW_XL = {"name": "ElasticSLatFlowModel", "args": {
    "resolution": 64, "in_channels": 8, "out_channels": 8, "model_channels": 1280,
    "cond_channels": 768, "num_blocks": 28, "num_heads": 16, "mlp_ratio": 4, "patch_size": 2,
    "num_io_res_blocks": 3, "io_block_channels": [256], "pe_mode": "ape", "qk_rms_norm": True,
    "use_fp16": True}}  # fmt: skip
MESH_DECODER = {"name": "SLatMeshDecoder", "args": {
    "resolution": 64, "model_channels": 768, "latent_channels": 8, "num_blocks": 12,
    "num_heads": 12, "mlp_ratio": 4, "attn_mode": "swin", "window_size": 8, "use_fp16": True,
    "representation_config": {"use_color": True}}}  # fmt: skip


def test_the_released_pipeline_json_reads_into_its_fields() -> None:
    config = PipelineConfig.from_dict(IMAGE_PIPELINE)
    assert not config.is_text and config.condition_model == "dinov2_vitl14_reg"
    sampler = config.sparse_structure_sampler
    assert (sampler.steps, sampler.cfg_strength, sampler.cfg_interval, sampler.rescale_t) == (
        25, 5.0, (0.5, 1.0), 3.0,
    )  # fmt: skip
    assert sampler.sigma_min == 1e-5 and config.slat_sampler == sampler
    assert len(config.slat_mean) == len(config.slat_std) == 8
    assert config.models["slat_flow_model"] == "ckpts/slat_flow_img_dit_L_64l8p2_fp16"
    assert PipelineConfig.from_dict(config.to_dict()) == config


def test_the_text_pipeline_names_its_clip_model(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(IMAGE_PIPELINE))
    raw["name"] = "TrellisTextTo3DPipeline"
    raw["args"]["text_cond_model"] = (
        raw["args"]
        .pop("image_cond_model")
        .replace("dinov2_vitl14_reg", "openai/clip-vit-large-patch14")
    )
    (tmp_path / "pipeline.json").write_text(json.dumps(raw))
    config = read_pipeline_config(tmp_path)
    assert config.is_text and config.condition_model == "openai/clip-vit-large-patch14"
    assert "text_cond_model" in config.to_dict()["args"]


@pytest.mark.parametrize(
    ("raw", "cls"),
    [(SS_FLOW_L, SSFlowConfig), (SS_FLOW_XL, SSFlowConfig), (SS_DECODER, SSDecoderConfig),
     (SLAT_FLOW_XL, SLatFlowConfig), (MESH_DECODER, SLatDecoderConfig)],
)  # fmt: skip
def test_released_checkpoint_jsons_round_trip(raw: dict, cls: type) -> None:
    spec = network_spec_from_dict(raw, "x.json")
    assert isinstance(spec.config, cls) and spec.name == raw["name"]
    for key, value in raw["args"].items():
        stored = getattr(spec.config, key)
        assert (list(stored) if isinstance(stored, tuple) else stored) == value
    assert network_spec_from_dict(network_spec_to_dict(spec), "x.json") == spec


def test_heads_come_from_num_heads_or_the_head_width() -> None:
    xl = network_spec_from_dict(SS_FLOW_XL, "x.json").config
    assert xl.heads == 16 and xl.model_channels // xl.heads == 80  # XL's 80-wide heads
    no_heads = {**SS_FLOW_L, "args": {k: v for k, v in SS_FLOW_L["args"].items()
                                      if k != "num_heads"}}  # fmt: skip
    assert network_spec_from_dict(no_heads, "x.json").config.heads == 1024 // 64
    decoder = network_spec_from_dict(SS_DECODER, "x.json").config
    assert decoder.upscale == 4  # 16^3 latent -> 64^3 occupancy


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "SparseStructureFlowModelV9"}, "unknown network"),
        ({"args": {**SS_FLOW_L["args"], "bogus": 1}}, "unknown arguments bogus"),
        ({"args": {k: v for k, v in SS_FLOW_L["args"].items() if k != "cond_channels"}},
         "cond_channels"),
        ({"args": {**SS_FLOW_L["args"], "share_mod": True}}, "share_mod"),
        ({"args": {**SS_FLOW_L["args"], "pe_mode": "rope"}}, "pe_mode"),
    ],
)  # fmt: skip
def test_an_unexpected_checkpoint_json_is_a_clear_error(
    tmp_path: Path, change: dict, words: str
) -> None:
    path = tmp_path / "ss_flow_x.json"
    path.write_text(json.dumps({**SS_FLOW_L, **change}))
    with pytest.raises(ProtocolError) as caught:
        read_network_spec(path)
    assert caught.value.code == ErrorCode.MODEL_FAILED
    assert "ss_flow_x.json" in caught.value.info.message and words in caught.value.info.message


def test_a_pipeline_without_a_flow_or_with_another_sampler_is_refused() -> None:
    raw = json.loads(json.dumps(IMAGE_PIPELINE))
    del raw["args"]["models"]["slat_flow_model"]
    with pytest.raises(ProtocolError, match="slat_flow_model"):
        PipelineConfig.from_dict(raw)
    raw = json.loads(json.dumps(IMAGE_PIPELINE))
    raw["args"]["slat_sampler"]["name"] = "FlowEulerCfgSampler"
    with pytest.raises(ProtocolError, match="FlowEulerCfgSampler"):
        PipelineConfig.from_dict(raw)


def test_a_missing_pipeline_json_is_weights_missing(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        read_pipeline_config(tmp_path)
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
