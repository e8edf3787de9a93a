"""The text -> image -> 3D bridge on a tiny random SD pipeline and real image adapters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.jobs.progress import ProgressTracker
from backend.models.base import GenerationRequest
from backend.models.image_bridge.adapter import ImageBridgeAdapter
from backend.models.builtin.inflate import InflateAdapter
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelRegistry
from backend.models.shap_e.adapter import ShapEImageAdapter
from backend.models.testing.shap_e import write_shap_e_image
from shared_protocol.errors import ErrorCode, ProtocolError


class QuickShapEImage(ShapEImageAdapter):
    """The real Shap-E image adapter with test-sized defaults (2 steps, 16^3 grid)."""

    parameters = tuple(
        replace(p, default={"steps": 2, "grid_size": 16}.get(p.name, p.default))
        for p in ShapEImageAdapter.parameters
    )


def _registry(extra_paths: dict[str, Path] | None = None) -> ModelRegistry:
    adapters = {"inflate": InflateAdapter, "procedural": ProceduralAdapter,
                "shap-e-img2img": QuickShapEImage}
    return ModelRegistry(adapters=adapters, weights_paths=extra_paths or {})


def _request(tiny_sd_dir: Path, **parameters) -> GenerationRequest:
    params = {"text_model": str(tiny_sd_dir), "image_size": 32, "steps": 2,
              # A random picture model draws noise; a dark subject keeps inflate's cut-out sane.
              **parameters}
    return GenerationRequest(task="text", prompt="a red chair", seed=3, parameters=params)


def test_text_to_inflated_solid_on_one_bar(tiny_sd_dir: Path) -> None:
    bridge = ImageBridgeAdapter(registry=_registry())
    bridge.load("cpu")
    request = _request(tiny_sd_dir)
    bridge.check_inputs(request)
    tracker = ProgressTracker({"load": 0.1, **ImageBridgeAdapter.stage_weights})
    fractions: list[float] = []
    previews: list[np.ndarray] = []

    def progress(stage, step, total, message="", preview=None):
        fractions.append(tracker.update("model", stage, step, total, message).fraction)
        if preview is not None:
            previews.append(preview)

    asset = bridge.generate(request, progress, CancelToken())
    assert len(asset.faces) > 0 and asset.color_field is not None
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.7)
    assert previews and previews[0].shape == (32, 32, 4)


def test_bridge_into_shap_e_image_model(tiny_sd_dir: Path, tmp_path: Path) -> None:
    shap_e_dir = write_shap_e_image(tmp_path / "shap-e-img2img")
    bridge = ImageBridgeAdapter(registry=_registry({"shap-e-img2img": shap_e_dir}))
    bridge.load("cpu")
    calls: list[str] = []
    asset = bridge.generate(
        _request(tiny_sd_dir, image_model="shap-e-img2img"),
        lambda stage, *rest, **k: calls.append(stage), CancelToken(),
    )
    assert asset.vertices.shape[1] == 3
    assert set(calls) == {"text_to_image", "image_to_3d"}  # inner stages folded into ours


def test_image_model_must_exist_and_take_images(tiny_sd_dir: Path) -> None:
    bridge = ImageBridgeAdapter(registry=_registry())
    with pytest.raises(ProtocolError) as caught:
        bridge.check_inputs(_request(tiny_sd_dir, image_model="nope"))
    assert caught.value.code == ErrorCode.UNKNOWN_MODEL
    with pytest.raises(ProtocolError) as caught:
        bridge.check_inputs(_request(tiny_sd_dir, image_model="procedural"))
    assert caught.value.code == ErrorCode.INVALID_PARAMETER


def test_missing_text_model_says_how_to_get_it(tmp_path: Path) -> None:
    bridge = ImageBridgeAdapter(registry=_registry())
    bridge.load("cpu")
    request = GenerationRequest(task="text", prompt="x",
                                parameters={"text_model": str(tmp_path)})
    with pytest.raises(ProtocolError) as caught:
        bridge.generate(request, lambda *a, **k: None, CancelToken())
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


def test_cancel_in_the_picture_stage(tiny_sd_dir: Path) -> None:
    bridge = ImageBridgeAdapter(registry=_registry())
    bridge.load("cpu")
    token = CancelToken()

    def progress(stage, step, total, *rest, **k):
        if stage == "text_to_image" and step == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        bridge.generate(_request(tiny_sd_dir, steps=3), progress, token)


def test_bridge_to_valid_glb(tiny_sd_dir: Path, tmp_path: Path) -> None:
    from backend.geometry.pipeline import PipelineOptions, run_pipeline
    from tests.support.gltf_validator import error_messages, validate

    bridge = ImageBridgeAdapter(registry=_registry())
    bridge.load("cpu")
    asset = bridge.generate(_request(tiny_sd_dir), lambda *a, **k: None, CancelToken())
    result = run_pipeline(asset, PipelineOptions(target_faces=500, texture_size=256))
    path = tmp_path / "bridge.glb"
    path.write_bytes(result.asset)
    assert error_messages(validate(path)) == []
