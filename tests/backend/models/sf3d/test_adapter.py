"""adapter.py end to end on tiny random weights in the official layout: image -> RawAsset ->
geometry pipeline -> a GLB the Khronos validator accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.registry import discover_adapters
from backend.models.sf3d.adapter import SF3DAdapter
from backend.models.sf3d.testing import TINY_PARAMETERS
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.gltf_validator import error_messages, validate

REPO = Path(__file__).resolve().parents[4]


def _disc_image(size: int = 96) -> np.ndarray:
    """An RGBA disc with a colour gradient on a transparent background."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    inside = xx**2 + yy**2 < 0.6
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., 0] = (xx * 0.5 + 0.5) * 255
    pixels[..., 1] = (yy * 0.5 + 0.5) * 255
    pixels[..., 2] = 90
    pixels[..., 3] = inside * 255
    return pixels


def _request(**parameters) -> GenerationRequest:
    return GenerationRequest(task="image", images=(ImagePixels(_disc_image()),),
                             parameters=parameters)


@pytest.fixture(scope="module")
def adapter(tiny_weights_dir: Path) -> SF3DAdapter:
    model = SF3DAdapter(tiny_weights_dir)
    model.load("cpu")
    return model


def test_registered_with_licence_and_gated_weights() -> None:
    cls = discover_adapters()["sf3d"]
    assert cls is SF3DAdapter
    info = SF3DAdapter(None).info()
    assert info.license == "Stability AI Community License"
    assert info.license_url.startswith("https://huggingface.co/stabilityai/stable-fast-3d")
    assert SF3DAdapter.weights.gated and not info.available


def test_load_without_weights_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as caught:
        SF3DAdapter(tmp_path).load("cpu")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING


def test_image_to_raw_asset_with_fields_and_progress(adapter: SF3DAdapter) -> None:
    events = []
    raw = adapter.generate(_request(), lambda *a, **k: events.append(a), CancelToken())
    stages = [e[0] for e in events]
    assert set(stages) <= set(SF3DAdapter.stage_weights)
    assert stages[0] == "preprocess" and "field" in stages and stages[-1] == "surface"
    assert len(raw.faces) > 0 and raw.vertices.shape[1] == 3
    # Inside the bbox, plus at most one grid offset (2 radius / resolution) past it.
    assert np.abs(raw.vertices).max() <= 0.87 * (1 + 2 / 16) + 1e-5
    points = raw.vertices[:50]
    colours = raw.color_field(points)
    assert colours.shape == (50, 3) and colours.min() >= 0 and colours.max() <= 1
    material = raw.material_field(points)
    assert material.shape == (50, 2)
    assert np.allclose(material, [raw.roughness, raw.metallic])
    assert 0 <= raw.roughness <= 1 and 0 <= raw.metallic <= 1


def test_albedo_field_reads_the_model_frame(adapter: SF3DAdapter) -> None:
    """Backend (x, y, z) is model (y, z, x): the field must undo that before querying."""
    from backend.models.sf3d.pipeline import FieldSampler

    assert adapter.pipeline is not None
    model = adapter.pipeline.model
    planes = np.random.default_rng(0).normal(size=(3, 8, 16, 16)).astype(np.float32)
    import torch

    sampler = FieldSampler(model, torch.from_numpy(planes), 0.5, 0.0)
    model_points = np.array([[0.3, -0.2, 0.1]], np.float32)
    direct = model.decode(torch.from_numpy(model_points), torch.from_numpy(planes))["features"]
    backend_points = model_points[:, [1, 2, 0]]
    assert np.allclose(sampler.albedo(backend_points), direct.detach().numpy(), atol=1e-6)


def test_cancel_stops_generation(adapter: SF3DAdapter) -> None:
    token = CancelToken()

    def progress(stage, step, total, message="", preview=None):
        if stage == "field":
            token.cancel()

    with pytest.raises(Cancelled):
        adapter.generate(_request(), progress, token)


def test_bad_resolution_is_refused(adapter: SF3DAdapter) -> None:
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(_request(isosurface_resolution=15))
    assert caught.value.field == "parameters.isosurface_resolution"


def test_adapter_to_validated_glb(adapter: SF3DAdapter, tmp_path: Path) -> None:
    raw = adapter.generate(_request(isosurface_resolution=24), lambda *a, **k: None,
                           CancelToken())
    result = run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256))
    path = tmp_path / "sf3d.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)


def test_loaded_model_meshes_on_upstream_tet_grid_when_found(
    tiny_weights_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """A ``{resolution}_tets.npz`` beside the weights (or in load/tets) is the grid used."""
    from backend.models.sf3d.isosurface import TetGrid
    from backend.models.sf3d.loading import TETS_DIR_ENV

    monkeypatch.delenv(TETS_DIR_ENV, raising=False)
    folder = tmp_path / "weights"
    shutil.copytree(tiny_weights_dir, folder)
    odd = TetGrid.regular(5)  # a grid of another size, so its use shows
    (folder / "load" / "tets").mkdir(parents=True)
    np.savez(folder / "load" / "tets" / "20_tets.npz", vertices=odd.vertices, indices=odd.tets)
    adapter = SF3DAdapter(folder)
    adapter.load("cpu")
    assert adapter.pipeline is not None
    assert adapter.pipeline.extractor(20).vertices.shape[0] == 6**3
    assert adapter.pipeline.extractor(16).vertices.shape[0] == 9**3  # ours: 8 cells a side
    raw = adapter.generate(_request(isosurface_resolution=20), lambda *a, **k: None,
                           CancelToken())
    assert len(raw.faces) > 0


def test_catalogue_import_loads_no_torch() -> None:
    """The card is read without torch or the network (they load in ``_load``)."""
    code = (
        "import sys; import backend.models.sf3d.adapter; "
        "bad = [m for m in ('torch', 'backend.models.sf3d.network') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_card_names_the_files_the_loader_reads() -> None:
    from backend.models.sf3d.loading import CONFIG_FILE, WEIGHTS_FILE

    assert SF3DAdapter.weights is not None
    assert [f.path for f in SF3DAdapter.weights.files] == [CONFIG_FILE, WEIGHTS_FILE]


def _framed(adapter: SF3DAdapter, image: np.ndarray, **parameters) -> np.ndarray:
    """The framed image the network saw (the preprocess preview)."""
    previews = []

    def progress(stage, step, total, message="", preview=None):
        if preview is not None:
            previews.append(preview)

    request = GenerationRequest(task="image", images=(ImagePixels(image),),
                                parameters={**TINY_PARAMETERS["sf3d"], **parameters})
    adapter.generate(request, progress, CancelToken())
    return previews[0]


def test_family_frames_the_shared_cut_out_and_never_cuts_again(adapter: SF3DAdapter) -> None:
    """An opaque photo is cut out once, by the template; SF3D only frames it."""
    from backend.models.common.background import remove_background
    from backend.models.sf3d.preprocess import condition_image

    assert adapter.pipeline is not None
    config = adapter.pipeline.model.config
    photo = np.full((90, 90, 4), 255, np.uint8)
    photo[..., :3] = (235, 235, 230)  # a plain light backdrop
    photo[25:70, 30:60, :3] = (40, 110, 200)  # the subject
    cutout = remove_background(photo, method="classical").rgba
    expected = condition_image(cutout, config, 0.7).framed
    seen = _framed(adapter, photo, background="classical", foreground_ratio=0.7)
    np.testing.assert_array_equal(seen, expected)
    assert seen[..., 3].min() == 0  # the backdrop is gone: cut out by the template
    # background "none": the image keeps its own framing and is taken as all subject.
    seen = _framed(adapter, photo, background="none")
    np.testing.assert_array_equal(seen, condition_image(photo, config, 0.85, False).framed)
    assert seen[..., 3].min() == 255


@pytest.mark.parametrize("fill", ["noise", "black", "white"])
def test_tiny_parameters_give_a_surface_for_any_subject(adapter: SF3DAdapter, fill: str) -> None:
    image = _disc_image()
    image[..., :3] = {
        "noise": np.random.default_rng(3).integers(0, 256, (96, 96, 3), dtype=np.uint8),
        "black": np.zeros((96, 96, 3), np.uint8),
        "white": np.full((96, 96, 3), 255, np.uint8),
    }[fill]
    request = GenerationRequest(task="image", images=(ImagePixels(image),),
                                parameters=TINY_PARAMETERS["sf3d"])
    raw = adapter.generate(request, lambda *a, **k: None, CancelToken())
    assert len(raw.faces) > 0 and not raw.warnings


@pytest.mark.parametrize("stage", ["preprocess", "encode", "field", "surface"])
def test_cancel_at_each_stage_stops_at_the_next_event(adapter: SF3DAdapter, stage: str) -> None:
    token = CancelToken()
    events = []

    def progress(name, step, total, message="", preview=None):
        events.append(name)
        if name == stage:
            token.cancel()

    with pytest.raises(Cancelled):
        adapter.generate(_request(**TINY_PARAMETERS["sf3d"]), progress, token)
    assert events[-1] == stage and events.count(stage) == 1  # nothing reported after it


def test_unload_drops_the_network(tiny_weights_dir: Path) -> None:
    adapter = SF3DAdapter(tiny_weights_dir)
    adapter.load("cpu")
    assert adapter.pipeline is not None
    adapter.unload()
    assert adapter.pipeline is None and not adapter.loaded
    with pytest.raises(ProtocolError) as caught:
        adapter.generate(_request(), lambda *a, **k: None, CancelToken())
    assert caught.value.code == ErrorCode.MODEL_FAILED
