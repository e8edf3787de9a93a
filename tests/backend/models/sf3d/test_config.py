"""config.py: the official config.yaml layout -> SF3DConfig, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.sf3d.config import SF3DConfig, config_from_dict, load_config
from backend.models.sf3d.testing import tiny_config_dict
from shared_protocol.errors import ProtocolError
from tests.backend.models.sf3d.conftest import DATA


def test_official_layout_gives_the_full_size_defaults() -> None:
    config = load_config(DATA / "config_full.yaml")
    assert config == SF3DConfig()
    assert config.dino.hidden_size == 1024 and config.dino.num_hidden_layers == 24
    assert [h.name for h in config.decoder_heads] == [
        "density", "features", "perturb_normal", "vertex_offset"
    ]
    assert config.decoder_heads[0].output_bias == -1.0


def test_tiny_layout_reads_inline_encoder_sizes() -> None:
    config = config_from_dict(tiny_config_dict())
    assert config.dino.hidden_size == 32 and config.dino.image_size == 70
    assert config.clip.vision_width == 32 and config.estimator_hidden == 16
    assert config.estimator_heads[0].shape == (-1, 1, 1)


def test_unknown_part_class_is_refused() -> None:
    raw = tiny_config_dict()
    raw["backbone_cls"] = "sf3d.models.transformers.backbone.SingleStreamTransformer"
    with pytest.raises(ProtocolError) as caught:
        config_from_dict(raw)
    assert caught.value.field == "config.backbone_cls"


def test_unknown_encoder_name_is_refused() -> None:
    raw = tiny_config_dict()
    del raw["image_tokenizer"]["dino"]
    raw["image_tokenizer"]["pretrained_model_name_or_path"] = "someone/dinov3"
    with pytest.raises(ProtocolError, match="unknown DINOv2"):
        config_from_dict(raw)


def test_unreadable_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("radius: [unclosed\n")
    with pytest.raises(ProtocolError, match="cannot be read"):
        load_config(path)
