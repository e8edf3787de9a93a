"""adapter.py end to end on tiny random weights in the official layout: image -> RawAsset ->
geometry pipeline -> a GLB the Khronos validator accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.registry import discover_adapters
from backend.models.sf3d.adapter import SF3DAdapter
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.gltf_validator import error_messages, validate


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
    from backend.models.sf3d.reconstruct import FieldSampler

    model = adapter.model
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
    assert caught.value.field == "body.parameters.isosurface_resolution"


def test_adapter_to_validated_glb(adapter: SF3DAdapter, tmp_path: Path) -> None:
    raw = adapter.generate(_request(isosurface_resolution=24), lambda *a, **k: None,
                           CancelToken())
    result = run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256))
    path = tmp_path / "sf3d.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)


def test_upstream_tet_grid_file_is_used_when_found(tmp_path: Path, monkeypatch) -> None:
    """{resolution}_tets.npz from the env folder, else the weights folder (or its load/tets)."""
    from backend.models.sf3d.adapter import TETS_DIR_ENV
    from backend.models.sf3d.isosurface import TetGrid

    monkeypatch.delenv(TETS_DIR_ENV, raising=False)
    adapter = SF3DAdapter(tmp_path)
    assert adapter.tet_grid_file(16) is None
    assert adapter.extractor(16).vertices.shape[0] == 9**3  # our regular grid, 8 cells a side
    odd = TetGrid.regular(5)  # a grid of another size, so its use shows
    (tmp_path / "load" / "tets").mkdir(parents=True)
    np.savez(tmp_path / "load" / "tets" / "20_tets.npz", vertices=odd.vertices, indices=odd.tets)
    assert adapter.tet_grid_file(20) == tmp_path / "load" / "tets" / "20_tets.npz"
    assert adapter.extractor(20).vertices.shape[0] == 6**3
    elsewhere = tmp_path / "env"
    elsewhere.mkdir()
    np.savez(elsewhere / "20_tets.npz", vertices=odd.vertices, indices=odd.tets)
    monkeypatch.setenv(TETS_DIR_ENV, str(elsewhere))
    assert adapter.tet_grid_file(20) == elsewhere / "20_tets.npz"
