"""The text -> image -> 3D bridge on tiny random picture models and real image adapters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.jobs.progress import ProgressTracker
from backend.models.base import GenerationRequest
from backend.models.builtin.inflate import InflateAdapter
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.image_bridge.adapter import ImageBridgeAdapter
from backend.models.image_bridge.testing import TINY_PARAMETERS
from backend.models.registry import ModelRegistry
from backend.models.shap_e.adapter import ShapEImageAdapter
from backend.models.shap_e.testing import write_tiny_weights as write_shap_e
from shared_protocol.errors import ErrorCode, ProtocolError


class QuickShapEImage(ShapEImageAdapter):
    """The real Shap-E image adapter with test-sized defaults (2 steps, 16^3 grid)."""

    parameters = tuple(
        replace(p, default={"steps": 2, "grid_size": 16}.get(p.name, p.default))
        for p in ShapEImageAdapter.parameters
    )


class WatchedInflate(InflateAdapter):
    """The real inflate model; it keeps the requests it ran (after the template's cut-out)."""

    requests: list[GenerationRequest] = []

    def _generate(self, request, progress, cancel):
        WatchedInflate.requests.append(request)
        return super()._generate(request, progress, cancel)


def _bridge(bridge_dir: Path, extra_paths: dict[str, Path] | None = None) -> ImageBridgeAdapter:
    adapters = {"image-bridge": ImageBridgeAdapter, "inflate": WatchedInflate,
                "procedural": ProceduralAdapter, "shap-e-img2img": QuickShapEImage}
    registry = ModelRegistry(adapters=adapters,
                             weights_paths={"image-bridge": bridge_dir, **(extra_paths or {})})
    return registry.create("image-bridge")  # type: ignore[return-value]


def _request(**parameters) -> GenerationRequest:
    return GenerationRequest(task="text", prompt="a red chair", seed=3,
                             parameters={**TINY_PARAMETERS["image-bridge"], **parameters})


def test_text_to_inflated_solid_on_one_bar(bridge_dir: Path) -> None:
    bridge = _bridge(bridge_dir)
    bridge.load("cpu")
    request = bridge.check_inputs(_request())
    tracker = ProgressTracker({"load": 0.1, **ImageBridgeAdapter.stage_weights})
    fractions: list[float] = []
    previews: list[np.ndarray] = []

    def progress(stage, step, total, message="", preview=None):
        assert stage in ImageBridgeAdapter.stage_weights
        fractions.append(tracker.update("model", stage, step, total, message).fraction)
        if preview is not None:
            previews.append(preview)

    WatchedInflate.requests.clear()
    asset = bridge.generate(request, progress, CancelToken())
    assert len(asset.faces) > 0 and asset.color_field is not None
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.7)
    assert previews and previews[0].shape == (32, 32, 4)
    # The picture went to inflate as it came, with the background method of our request.
    (handed,) = WatchedInflate.requests
    assert handed.parameters["background"] == "none"
    np.testing.assert_array_equal(handed.images[0].pixels, previews[0])


def test_any_diffusers_pipeline_by_folder(bridge_dir: Path, tiny_sd_dir: Path) -> None:
    bridge = _bridge(bridge_dir)
    bridge.load("cpu")
    own = bridge.text_pipeline
    asset = bridge.generate(_request(text_model=str(tiny_sd_dir)), lambda *a, **k: None,
                            CancelToken())
    assert len(asset.faces) > 0
    assert bridge.text_folder == tiny_sd_dir and bridge.text_pipeline is not own
    assert type(bridge.text_pipeline).__name__ == "StableDiffusionPipeline"
    bridge.unload()
    assert bridge.text_pipeline is None and not bridge.loaded


def test_bridge_into_shap_e_image_model(bridge_dir: Path, tmp_path: Path) -> None:
    shap_e_dir = write_shap_e(tmp_path / "shap-e-img2img", "shap-e-img2img")
    bridge = _bridge(bridge_dir, {"shap-e-img2img": shap_e_dir})
    bridge.load("cpu")
    calls: list[str] = []
    request = bridge.check_inputs(_request(image_model="shap-e-img2img"))
    asset = bridge.generate(request, lambda stage, *rest, **k: calls.append(stage),
                            CancelToken())
    assert asset.vertices.shape[1] == 3
    assert set(calls) == {"text_to_image", "image_to_3d"}  # inner stages folded into ours


def test_image_model_is_checked_in_the_catalogue(bridge_dir: Path) -> None:
    bridge = _bridge(bridge_dir)
    cases = {"nope": ErrorCode.UNKNOWN_MODEL, "procedural": ErrorCode.INVALID_PARAMETER,
             "shap-e-img2img": ErrorCode.WEIGHTS_MISSING}  # installed, no weights here
    for name, code in cases.items():
        with pytest.raises(ProtocolError) as caught:
            bridge.check_inputs(_request(image_model=name))
        assert caught.value.code == code, name
        assert caught.value.field == "parameters.image_model"


def test_an_image_model_error_names_our_field(bridge_dir: Path) -> None:
    """A random picture is noise: inflate's cut-out finds no subject in it. Its error names
    ``images[0]`` of the inner request, which our client never sent: ours names the parameter
    that chose inflate, and the message says it was inflate."""
    bridge = _bridge(bridge_dir)
    bridge.load("cpu")
    with pytest.raises(ProtocolError) as caught:
        bridge.generate(_request(background="classical"), lambda *a, **k: None, CancelToken())
    assert caught.value.code == ErrorCode.INVALID_IMAGE
    assert caught.value.field == "parameters.image_model"
    assert "'inflate'" in str(caught.value) and "no subject" in str(caught.value)


def test_missing_text_model_says_how_to_get_it(bridge_dir: Path, tmp_path: Path) -> None:
    bridge = _bridge(bridge_dir)
    request = _request(text_model=str(tmp_path))
    with pytest.raises(ProtocolError) as caught:
        bridge.check_inputs(request)
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    assert caught.value.field == "parameters.text_model"
    bridge.load("cpu")
    with pytest.raises(ProtocolError) as caught:
        bridge.generate(request, lambda *a, **k: None, CancelToken())
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


def test_missing_own_weights(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        ImageBridgeAdapter(tmp_path).load("cpu")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


def test_cancel_in_the_picture_stage(bridge_dir: Path, tiny_sd_dir: Path) -> None:
    bridge = _bridge(bridge_dir)
    bridge.load("cpu")
    token = CancelToken()

    def progress(stage, step, total, *rest, **k):
        if stage == "text_to_image" and step == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        bridge.generate(_request(text_model=str(tiny_sd_dir), steps=3), progress, token)


def test_bridge_to_valid_glb(bridge_dir: Path, tmp_path: Path) -> None:
    from backend.geometry.pipeline import PipelineOptions, run_pipeline
    from tests.support.gltf_validator import error_messages, validate

    bridge = _bridge(bridge_dir)
    bridge.load("cpu")
    asset = bridge.generate(_request(), lambda *a, **k: None, CancelToken())
    result = run_pipeline(asset, PipelineOptions(target_faces=500, texture_size=256))
    path = tmp_path / "bridge.glb"
    path.write_bytes(result.asset)
    assert error_messages(validate(path)) == []
