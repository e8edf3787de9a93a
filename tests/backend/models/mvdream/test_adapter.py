"""The mvdream adapter end to end on the tiny checkpoint, through the geometry pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from backend.jobs.progress import ProgressTracker
from backend.models.base import CancelToken, GenerationRequest, ModelAdapter
from backend.models.inflate import InflateAdapter
from backend.models.mvdream.adapter import MVDreamAdapter
from backend.models.mvdream.config import TINY
from backend.models.procedural import ProceduralAdapter
from backend.models.registry import ModelRegistry
from backend.models.testing.mvdream import write_upstream_config
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.gltf_validator import error_messages, validate


class RecordingMultiView(ModelAdapter):
    """Stands in for hunyuan3d-2mv (on another branch): records the hand-off, inflates front."""

    id = "hunyuan3d-2mv"
    name = "recording multi-view reconstructor"
    tasks = ("multi_image", "image")
    license = "test"
    max_images = 4
    requests: list[GenerationRequest] = []

    def load(self, device: str, dtype: str = "float32") -> None:
        self.inner = InflateAdapter()

    def generate(self, request, progress, cancel) -> RawAsset:
        RecordingMultiView.requests.append(request)
        front = next(i for i in request.images if i.view == "front")
        single = GenerationRequest(task="image", images=(front,),
                                   parameters={"resolution": 48})
        return self.inner.generate(single, progress, cancel)


class QuickInflate(InflateAdapter):
    def generate(self, request, progress, cancel):
        request = GenerationRequest(task="image", images=request.images,
                                    parameters={"resolution": 48})
        return super().generate(request, progress, cancel)


@pytest.fixture(scope="module")
def tiny_weights(mvdream_dir: Path) -> Path:
    write_upstream_config(TINY, mvdream_dir / "sd-v2-base.yaml")
    return mvdream_dir


def _registry(with_multi_view: bool) -> ModelRegistry:
    adapters: dict = {"inflate": QuickInflate, "procedural": ProceduralAdapter}
    if with_multi_view:
        adapters["hunyuan3d-2mv"] = RecordingMultiView
    return ModelRegistry(adapters=adapters)


def _request(**parameters) -> GenerationRequest:
    return GenerationRequest(task="text", prompt="a mug", seed=2,
                             parameters={"steps": 2, "image_size": 32, **parameters})


def test_fallback_path_to_a_valid_glb(tiny_weights: Path, tmp_path: Path) -> None:
    adapter = MVDreamAdapter(tiny_weights, registry=_registry(False))
    adapter.load("cpu")
    request = _request()
    adapter.check_inputs(request)
    tracker = ProgressTracker({"load": 0.1, **MVDreamAdapter.stage_weights})
    fractions: list[float] = []
    stages: list[str] = []

    def progress(stage, step, total, message="", preview=None):
        stages.append(stage)
        fractions.append(tracker.update("model", stage, step, total, message).fraction)

    asset = adapter.generate(request, progress, CancelToken())
    assert any("not installed" in w for w in asset.warnings)
    assert fractions == sorted(fractions)
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        "views", "cutout", "reconstruct", "texture"]
    colours = asset.color_field(asset.vertices[:10])
    np.testing.assert_allclose(colours, asset.vertex_colors[:10])
    result = run_pipeline(asset, PipelineOptions(target_faces=500, texture_size=256))
    path = tmp_path / "mvdream.glb"
    path.write_bytes(result.asset)
    assert error_messages(validate(path)) == []


def test_multi_view_hand_off(tiny_weights: Path) -> None:
    RecordingMultiView.requests.clear()
    adapter = MVDreamAdapter(tiny_weights, registry=_registry(True))
    adapter.load("cpu")
    asset = adapter.generate(_request(), lambda *a, **k: None, CancelToken())
    (handed,) = RecordingMultiView.requests
    assert handed.task == "multi_image"
    assert [i.view for i in handed.images] == ["front", "left", "back", "right"]
    assert all(i.pixels.shape == (32, 32, 4) for i in handed.images)
    assert len(asset.faces) > 0 and not asset.warnings


def test_reconstructor_must_take_images(tiny_weights: Path) -> None:
    adapter = MVDreamAdapter(tiny_weights, registry=_registry(False))
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(reconstructor="procedural"))
    assert caught.value.code == ErrorCode.INVALID_PARAMETER
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(reconstructor="nope"))
    assert caught.value.code == ErrorCode.UNKNOWN_MODEL


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        MVDreamAdapter(tmp_path).load("cpu")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
