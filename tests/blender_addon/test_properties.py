"""properties.py: the typed request built from the panel, its checks, parameters and presets."""

from __future__ import annotations

import dataclasses

import bpy
import pytest

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ModelInfo, ParameterSchema

MODEL = ModelInfo(
    id="demo", name="Demo", tasks=("text", "image"), vram_mb=1000, license="MIT",
    parameters=(
        ParameterSchema("steps", "int", 16, "Steps", minimum=1, maximum=64),
        ParameterSchema("guidance", "float", 3.5, minimum=0.0, maximum=20.0),
        ParameterSchema("tiling", "bool", False),
        ParameterSchema("sampler", "choice", "ddim", choices=("ddim", "euler")),
        ParameterSchema("negative", "str", ""),
    ),
)


@pytest.fixture
def settings(fresh):
    settings = bpy.context.scene.dreamcad
    settings.model_id = MODEL.id
    fresh.properties.sync_parameters(settings, MODEL)
    return settings


def test_request_carries_the_panel_state(fresh, settings) -> None:
    settings.prompt = "  a chair "
    settings.randomize_seed, settings.seed = False, 1234
    settings.quality = "HIGH"
    settings.pbr = False
    request = fresh.properties.build_submit_request(settings, MODEL)
    assert (request.model, request.task, request.prompt, request.seed) == \
        ("demo", "text", "a chair", 1234)
    assert (request.target_faces, request.texture_size, request.pbr) == (100_000, 2048, False)
    assert request.parameters == {"steps": 16, "guidance": 3.5, "tiling": False,
                                  "sampler": "ddim", "negative": ""}
    settings.randomize_seed = True
    assert fresh.properties.build_submit_request(settings, MODEL).seed is None


def test_parameters_follow_the_schema_and_keep_user_values(fresh, settings) -> None:
    assert [(p.name, p.kind, p.label) for p in settings.parameters][:2] == \
        [("steps", "int", "Steps"), ("guidance", "float", "Guidance")]
    settings.parameters["steps"].int_value = 32
    settings.parameters["sampler"].choice_value = "euler"
    fresh.properties.sync_parameters(settings, MODEL)  # e.g. after reconnecting
    assert settings.parameters["steps"].int_value == 32
    assert settings.parameters["sampler"].choice_value == "euler"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        (lambda s: setattr(s, "prompt", ""), ErrorCode.MISSING_FIELD, "prompt"),
        # the backend's own check (shared_protocol.parameters): the same code and words
        (lambda s: setattr(s.parameters["steps"], "int_value", 99), ErrorCode.OUT_OF_RANGE,
         "parameters.steps"),
        (lambda s: setattr(s, "task", "multi_image"), ErrorCode.UNSUPPORTED_TASK, "task"),
        (lambda s: setattr(s, "task", "image"), ErrorCode.MISSING_FIELD, "image"),
    ],
)
def test_bad_panel_state_names_the_field(fresh, settings, change, code, field) -> None:
    settings.prompt = "x"
    change(settings)
    with pytest.raises(ProtocolError) as caught:
        fresh.properties.build_submit_request(settings, MODEL)
    assert caught.value.code is code and caught.value.field == field and caught.value.hint


def test_missing_or_unavailable_model(fresh, settings) -> None:
    settings.prompt = "x"
    with pytest.raises(ProtocolError) as caught:
        fresh.properties.build_submit_request(settings, None)
    assert caught.value.code is ErrorCode.UNKNOWN_MODEL
    gone = ModelInfo(id="g", name="G", tasks=("text",), parameters=(), vram_mb=1, license="x",
                     weights_present=False, available=False, unavailable_reason="no weights")
    with pytest.raises(ProtocolError, match="no weights") as caught:
        fresh.properties.build_submit_request(settings, gone)
    assert caught.value.code is ErrorCode.WEIGHTS_MISSING
    too_big = dataclasses.replace(gone, weights_present=True, unavailable_reason="needs 80 GB")
    with pytest.raises(ProtocolError, match="needs 80 GB") as caught:
        fresh.properties.build_submit_request(settings, too_big)
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE and caught.value.field == "model"


def test_prompt_length_limit_from_the_backend(fresh, settings) -> None:
    settings.prompt = "x" * 50
    with pytest.raises(ProtocolError) as caught:
        fresh.properties.build_submit_request(settings, MODEL, max_prompt_chars=10)
    assert caught.value.code is ErrorCode.PROMPT_TOO_LONG


def test_presets_save_and_load(fresh, settings) -> None:
    presets = fresh.operators.presets
    settings.quality, settings.pbr = "DRAFT", False
    settings.parameters["steps"].int_value = 8
    settings.preset_name = "Quick Look"
    assert bpy.ops.dreamcad.preset_save() == {"FINISHED"}
    settings.quality, settings.pbr = "HIGH", True
    settings.parameters["steps"].int_value = 40
    # Loading looks the model up live; without a backend its parameters are applied by name.
    data = presets.settings_to_preset(settings)
    assert data["parameters"]["steps"] == 40
    assert bpy.ops.dreamcad.preset_load(preset="Quick Look") == {"FINISHED"}
    assert (settings.quality, settings.pbr, settings.target_faces) == ("DRAFT", False, 5000)
    bpy.ops.dreamcad.preset_delete()
    assert not presets.preset_path("Quick Look").exists()


def test_quality_preset_follows_hand_set_values(fresh, settings) -> None:
    settings.quality = "HIGH"
    assert (settings.target_faces, settings.texture_size) == (100_000, "2048")
    settings.target_faces = 60_000  # set by hand: the menu must not claim "High" any more
    assert settings.quality == "CUSTOM"
    settings.quality = "CUSTOM"
    assert (settings.target_faces, settings.texture_size) == (60_000, "2048")  # kept
    settings.target_faces, settings.texture_size = 5_000, "512"
    assert settings.quality == "DRAFT"  # matching a preset's values is that preset
