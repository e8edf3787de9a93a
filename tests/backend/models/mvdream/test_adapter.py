"""The mvdream adapter end to end on the tiny checkpoint, through the geometry pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from backend.cancellation import CancelToken
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.jobs.progress import ProgressTracker
from backend.jobs.runner import JobSpec, run_job
from backend.models.base import GenerationRequest
from backend.models.hunyuan3d.adapter import Hunyuan3D2MVAdapter
from backend.models.hunyuan3d.conditioner import VIEW_INDEX
from backend.models.inflate import InflateAdapter
from backend.models.mvdream.adapter import VIEW_NAMES, MVDreamAdapter
from backend.models.mvdream.back_projection import camera_axes
from backend.models.mvdream.camera import DEFAULT_AZIMUTHS
from backend.models.mvdream.config import TINY
from backend.models.procedural import ProceduralAdapter
from backend.models.registry import ModelCache, ModelRegistry, discover_adapters
from backend.models.testing.mvdream import write_upstream_config
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.hunyuan3d.conftest import load_reference
from tests.support.gltf_validator import error_messages, validate


@pytest.fixture(scope="module")
def tiny_weights(mvdream_dir: Path) -> Path:
    write_upstream_config(TINY, mvdream_dir / "sd-v2-base.yaml")
    return mvdream_dir


def _registry() -> ModelRegistry:
    return ModelRegistry(adapters={"inflate": InflateAdapter, "procedural": ProceduralAdapter})


def _request(**parameters) -> GenerationRequest:
    return GenerationRequest(
        task="text", prompt="a mug", seed=2, target_faces=500, texture_size=256,
        parameters={"steps": 2, "image_size": 32, "reconstructor_resolution": 48, **parameters},
    )


def test_fallback_path_to_a_valid_glb(tiny_weights: Path, tmp_path: Path) -> None:
    adapter = MVDreamAdapter(tiny_weights, registry=_registry())
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
    # the four views with their cut-outs as alpha, for the geometry pipeline to bake
    assert asset.views is not None and asset.views.images.shape == (4, 32, 32, 4)
    assert asset.color_field is None and asset.uvs is None
    result = run_pipeline(asset, PipelineOptions(target_faces=500, texture_size=256))
    path = tmp_path / "mvdream.glb"
    path.write_bytes(result.asset)
    assert error_messages(validate(path)) == []


def test_reconstructor_must_take_images(tiny_weights: Path) -> None:
    adapter = MVDreamAdapter(tiny_weights, registry=_registry())
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(reconstructor="procedural"))
    assert caught.value.code == ErrorCode.INVALID_PARAMETER
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(reconstructor="nope"))
    assert caught.value.code == ErrorCode.UNKNOWN_MODEL


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        MVDreamAdapter(tmp_path, registry=_registry()).load("cpu")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


class WatchedMultiView(Hunyuan3D2MVAdapter):
    """The real hunyuan3d-2mv adapter; it only keeps the requests it was given."""

    requests: list[GenerationRequest] = []

    def generate(self, request, progress, cancel):
        WatchedMultiView.requests.append(request)
        return super().generate(request, progress, cancel)


def write_mv_turbo(folder: Path) -> Path:
    """A tiny random hunyuan3d-2mv in the hub layout: <variant>/config.yaml + fp16 safetensors.

    Config and random weights come from the Hunyuan parity data (tests/data/hunyuan).
    """
    reference = load_reference("mv")
    variant = folder / Hunyuan3D2MVAdapter.variant_folder("turbo")
    variant.mkdir(parents=True)
    (variant / "config.yaml").write_text(str(reference["config_yaml"]), encoding="utf-8")
    weights = {key.removeprefix("weight:"): torch.from_numpy(np.array(value)).half()
               for key, value in reference.items() if key.startswith("weight:")}
    save_file(weights, str(variant / "model.fp16.safetensors"))
    return folder


def test_text_to_glb_through_hunyuan3d_2mv_as_one_job(tiny_weights: Path, tmp_path: Path) -> None:
    WatchedMultiView.requests.clear()
    adapters = {**discover_adapters(), "hunyuan3d-2mv": WatchedMultiView}
    registry = ModelRegistry(adapters, weights_paths={
        "mvdream": tiny_weights, "hunyuan3d-2mv": write_mv_turbo(tmp_path / "hunyuan")})
    assert registry.create("hunyuan3d-2mv").weights_present()
    request = _request(reconstructor="hunyuan3d-2mv", reconstructor_resolution=32)
    registry.create("mvdream").check_inputs(request)
    events = []
    output = run_job(ModelCache(registry, "cpu", None), JobSpec("mvdream", request),
                     lambda progress, preview: events.append(progress), CancelToken())

    (handed,) = WatchedMultiView.requests
    assert handed.task == "multi_image"
    assert [image.view for image in handed.images] == ["front", "left", "back", "right"]
    assert all(image.pixels.shape == (32, 32, 4) for image in handed.images)
    assert handed.parameters == {"octree_resolution": 32}
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0
    stages = [event.stage for event in events]
    for stage in ("load", "views", "cutout", "reconstruct", "texture", "bake", "export"):
        assert stage in stages
    assert not any("not installed" in w for w in output.manifest.warnings)
    assert 0 < output.manifest.faces <= 500
    path = tmp_path / "mvdream-hunyuan.glb"
    path.write_bytes(output.asset)
    assert error_messages(validate(path)) == []


def test_view_names_follow_hunyuan_slots_and_sides() -> None:
    """Azimuths 0/90/180/270 fill Hunyuan's slots 0..3, and "left" sees the subject's left.

    The subject faces +Z with +Y up, so its left hand is +X (forward x up = Z x Y = -X is its
    right); the camera named "left" must sit on that side.
    """
    names = [VIEW_NAMES[a] for a in DEFAULT_AZIMUTHS]
    assert [VIEW_INDEX[n] for n in names] == [0, 1, 2, 3]
    subject_left = -np.cross([0.0, 0.0, 1.0], [0.0, 1.0, 0.0])
    sides = {VIEW_NAMES[a]: camera_axes(0.0, a)[0] for a in DEFAULT_AZIMUTHS}
    np.testing.assert_allclose(sides["left"], subject_left, atol=1e-12)
    np.testing.assert_allclose(sides["right"], -subject_left, atol=1e-12)
    np.testing.assert_allclose(sides["front"], [0.0, 0.0, 1.0], atol=1e-12)
