"""The mvdream adapter end to end on the tiny checkpoint, through the geometry pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import CancelToken
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.jobs.progress import ProgressTracker
from backend.jobs.runner import run_job
from backend.jobs.spec import JobSpec
from backend.models.base import GenerationRequest
from backend.models.builtin.inflate import InflateAdapter
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.common.background import remove_background
from backend.models.hunyuan3d.conditioner import VIEW_INDEX
from backend.models.mvdream.adapter import VIEW_NAMES, MVDreamAdapter
from backend.models.mvdream.back_projection import camera_axes
from backend.models.mvdream.camera import DEFAULT_AZIMUTHS
from backend.models.mvdream.testing import TINY_PARAMETERS
from backend.models.registry import ModelCache, ModelRegistry, discover_adapters
from backend.models.shap_e.adapter import ShapEImageAdapter
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.gltf_validator import error_messages, validate


class WatchedInflate(InflateAdapter):
    """The real inflate model; it keeps the requests it ran (after the template's cut-out)."""

    requests: list[GenerationRequest] = []

    def _generate(self, request, progress, cancel):
        WatchedInflate.requests.append(request)
        return super()._generate(request, progress, cancel)


def _registry(mvdream_dir: Path, **adapters) -> ModelRegistry:
    classes = {"mvdream": MVDreamAdapter, "inflate": WatchedInflate,
               "procedural": ProceduralAdapter, **adapters}
    return ModelRegistry(adapters=classes, weights_paths={"mvdream": mvdream_dir})


def _request(**parameters) -> GenerationRequest:
    tiny = {**TINY_PARAMETERS["mvdream"], "reconstructor": "auto"}
    return GenerationRequest(task="text", prompt="a mug", seed=2, target_faces=500,
                             texture_size=256, parameters={**tiny, **parameters})


def test_fallback_path_to_a_valid_glb(mvdream_dir: Path, tmp_path: Path) -> None:
    adapter = _registry(mvdream_dir).create("mvdream")
    adapter.load("cpu")
    request = adapter.check_inputs(_request())
    tracker = ProgressTracker({"load": 0.1, **MVDreamAdapter.stage_weights})
    fractions: list[float] = []
    stages: list[str] = []
    previews: list[np.ndarray] = []

    def progress(stage, step, total, message="", preview=None):
        stages.append(stage)
        fractions.append(tracker.update("model", stage, step, total, message).fraction)
        if preview is not None:
            previews.append(preview)

    WatchedInflate.requests.clear()
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

    # The front view reached inflate cut out by the shared module, once: its mask is the one
    # the classical cut-out gives that view, and inflate was told not to cut it out again.
    (handed,) = WatchedInflate.requests
    assert handed.parameters["background"] == "none"
    front = np.split(previews[0], 4, axis=1)[0]
    try:
        expected = remove_background(front, method="classical").rgba[..., 3]
    except ProtocolError:  # no subject stands out in the view: it is kept whole
        expected = np.full(front.shape[:2], 255, np.uint8)
    np.testing.assert_array_equal(handed.images[0].pixels[..., 3], expected)
    np.testing.assert_array_equal(handed.images[0].pixels[..., :3], front)


def test_reconstructor_is_checked_in_the_catalogue(mvdream_dir: Path) -> None:
    registry = _registry(mvdream_dir, **{"shap-e-img2img": ShapEImageAdapter})
    adapter = registry.create("mvdream")
    cases = {"procedural": ErrorCode.INVALID_PARAMETER, "nope": ErrorCode.UNKNOWN_MODEL,
             "shap-e-img2img": ErrorCode.WEIGHTS_MISSING}  # installed, no weights here
    for name, code in cases.items():
        with pytest.raises(ProtocolError) as caught:
            adapter.check_inputs(_request(reconstructor=name))
        assert caught.value.code == code, name
        assert caught.value.field == "parameters.reconstructor"
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(image_size=36))
    assert caught.value.field == "parameters.image_size"
    # inflate's grid goes to 384: the reconstructor's own range, named by the field we sent
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(reconstructor="inflate", reconstructor_resolution=500))
    assert caught.value.code == ErrorCode.OUT_OF_RANGE
    assert caught.value.field == "parameters.reconstructor_resolution"
    assert "'inflate'" in str(caught.value)


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        MVDreamAdapter(tmp_path).load("cpu")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


def test_text_to_glb_through_hunyuan3d_2mv_as_one_job(mvdream_dir: Path, tmp_path: Path) -> None:
    hunyuan_testing = pytest.importorskip(
        "backend.models.hunyuan3d.testing", reason="hunyuan3d is not ported to the template yet"
    )
    from backend.models.hunyuan3d.adapter import Hunyuan3D2MVAdapter

    class WatchedMultiView(Hunyuan3D2MVAdapter):
        """The real hunyuan3d-2mv adapter; it keeps the requests it ran."""

        requests: list[GenerationRequest] = []

        def _generate(self, request, progress, cancel):
            WatchedMultiView.requests.append(request)
            return super()._generate(request, progress, cancel)

    hunyuan_dir = hunyuan_testing.write_tiny_weights(tmp_path / "hunyuan", "hunyuan3d-2mv")
    adapters = {**discover_adapters(), "hunyuan3d-2mv": WatchedMultiView}
    registry = ModelRegistry(adapters, weights_paths={
        "mvdream": mvdream_dir, "hunyuan3d-2mv": hunyuan_dir})
    assert registry.create("hunyuan3d-2mv").weights_present()
    request = registry.create("mvdream").check_inputs(
        _request(reconstructor="auto", reconstructor_resolution=32))
    spec = JobSpec(model="mvdream", task="text", prompt=request.prompt, seed=request.seed,
                   parameters=dict(request.parameters), target_faces=500, texture_size=256)
    events = []
    output = run_job(ModelCache(registry, "cpu", None), spec, (),
                     lambda progress, preview: events.append(progress), CancelToken())

    (handed,) = WatchedMultiView.requests
    assert handed.task == "multi_image"
    assert [image.view for image in handed.images] == ["front", "left", "back", "right"]
    assert all(image.pixels.shape == (32, 32, 4) for image in handed.images)
    assert handed.parameters["octree_resolution"] == 32
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
