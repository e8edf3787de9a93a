"""The Hunyuan3D-2 adapters end to end on tiny variants in the official layout (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import GenerationRequest, InputImage
from backend.models.hunyuan3d.adapter import (
    LICENSE,
    Hunyuan3D2Adapter,
    Hunyuan3D2MiniAdapter,
    Hunyuan3D2MVAdapter,
)
from backend.models.hunyuan3d.pipeline import ShapePipeline, ShapeSettings
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.hunyuan3d.conftest import (
    load_reference,
    reference_mask,
    write_turbo_vae,
    write_variant,
)

SMALL = {"octree_resolution": 32, "num_chunks": 4096}


def subject_image(seed: int = 0, size: int = 48) -> np.ndarray:
    """(size, size, 4) uint8: a noisy disc on transparency."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 3) ** 2
    pixels[..., 3] = np.where(inside, 255, 0)
    return pixels


@pytest.fixture
def mini(tmp_path: Path) -> Hunyuan3D2MiniAdapter:
    write_variant(load_reference("turbo"), tmp_path / "hunyuan3d-dit-v2-mini-turbo")
    write_variant(load_reference("plain"), tmp_path / "hunyuan3d-dit-v2-mini")
    adapter = Hunyuan3D2MiniAdapter(tmp_path)
    adapter.load("cpu")
    return adapter


@pytest.fixture
def multi_view(tmp_path: Path) -> Hunyuan3D2MVAdapter:
    write_variant(load_reference("mv"), tmp_path / "hunyuan3d-dit-v2-mv-turbo")
    adapter = Hunyuan3D2MVAdapter(tmp_path)
    adapter.load("cpu")
    return adapter


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, step: int, total: int, message: str = "", preview=None):
        self.events.append((stage, step, total))


def test_info_shows_licence_and_weights(tmp_path: Path) -> None:
    info = Hunyuan3D2MiniAdapter(tmp_path).info()
    assert "European Union" in info.license and info.license == LICENSE
    assert not info.weights_present and "download hunyuan3d-2mini" in info.unavailable_reason


@pytest.mark.parametrize("variant", ["turbo", "standard"])
def test_generate_reports_every_step_and_chunk(mini: Hunyuan3D2MiniAdapter, variant: str) -> None:
    recorder = Recorder()
    request = GenerationRequest(
        task="image",
        images=(InputImage(subject_image()),),
        seed=3,
        parameters={"variant": variant, "steps": 3, "decoding": "dense", **SMALL},
    )
    asset = mini.generate(request, recorder, CancelToken())
    assert isinstance(asset, RawAsset) and len(asset.faces) > 0
    assert np.abs(asset.vertices).max() <= 1.01
    sampling = [e for e in recorder.events if e[0] == "sampling"]
    assert [step for _, step, _ in sampling] == [1, 2, 3]
    decoding = [e for e in recorder.events if e[0] == "decoding"]
    assert decoding[-1][1] == decoding[-1][2] == -(-(33**3) // 4096)


def test_cancel_stops_between_steps(mini: Hunyuan3D2MiniAdapter) -> None:
    token = CancelToken()

    def progress(stage: str, step: int, total: int, message: str = "", preview=None) -> None:
        if stage == "sampling" and step == 1:
            token.cancel()

    request = GenerationRequest(
        task="image", images=(InputImage(subject_image()),), parameters={"steps": 4, **SMALL}
    )
    with pytest.raises(Cancelled):
        mini.generate(request, progress, token)


def test_missing_variant_is_weights_missing(mini: Hunyuan3D2MiniAdapter) -> None:
    request = GenerationRequest(
        task="image", images=(InputImage(subject_image()),), parameters={"variant": "fast"}
    )
    with pytest.raises(ProtocolError) as error:
        mini.check_inputs(request)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    assert error.value.field == "body.parameters.variant"


def test_no_weights_folder_is_weights_missing() -> None:
    with pytest.raises(ProtocolError) as error:
        Hunyuan3D2MiniAdapter(None).load("cpu")
    assert error.value.code == ErrorCode.WEIGHTS_MISSING


def test_transparent_image_is_rejected(mini: Hunyuan3D2MiniAdapter) -> None:
    empty = np.zeros((32, 32, 4), dtype=np.uint8)
    request = GenerationRequest(task="image", images=(InputImage(empty),))
    with pytest.raises(ProtocolError) as error:
        mini.generate(request, Recorder(), CancelToken())
    assert error.value.code == ErrorCode.INVALID_IMAGE


def test_multi_view_any_subset(multi_view: Hunyuan3D2MVAdapter) -> None:
    images = tuple(
        InputImage(subject_image(i), view) for i, view in enumerate(("back", "front", "right"))
    )
    request = GenerationRequest(task="multi_image", images=images, parameters={"steps": 2, **SMALL})
    asset = multi_view.generate(request, Recorder(), CancelToken())
    assert len(asset.faces) > 0


@pytest.mark.parametrize(
    ("views", "code"),
    [(("front", "front"), ErrorCode.INVALID_FIELD), (("top",), ErrorCode.INVALID_FIELD)],
)
def test_multi_view_rejects_bad_views(
    multi_view: Hunyuan3D2MVAdapter, views: tuple[str, ...], code: ErrorCode
) -> None:
    images = tuple(InputImage(subject_image(), view) for view in views)
    with pytest.raises(ProtocolError) as error:
        multi_view.check_inputs(GenerationRequest(task="multi_image", images=images))
    assert error.value.code == code


def test_five_views_are_too_many(multi_view: Hunyuan3D2MVAdapter) -> None:
    images = tuple(InputImage(subject_image(), "front") for _ in range(5))
    with pytest.raises(ProtocolError) as error:
        multi_view.check_inputs(GenerationRequest(task="multi_image", images=images))
    assert error.value.code == ErrorCode.TOO_MANY_FRAMES


def test_raw_mesh_goes_through_the_geometry_pipeline_to_a_valid_glb(
    mini: Hunyuan3D2MiniAdapter, tmp_path: Path
) -> None:
    from backend.geometry.pipeline import PipelineOptions, run_pipeline
    from tests.support.gltf_validator import error_messages, validate

    request = GenerationRequest(
        task="image",
        images=(InputImage(subject_image()),),
        parameters={"steps": 2, "decoding": "dense", **SMALL},
    )
    raw = mini.generate(request, Recorder(), CancelToken())
    result = run_pipeline(raw, PipelineOptions(target_faces=500, texture_size=256))
    assert result.faces <= 500
    path = tmp_path / "hunyuan.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)


def test_texture_paint_without_its_weights_is_refused(mini: Hunyuan3D2MiniAdapter) -> None:
    request = GenerationRequest(task="image", images=(InputImage(subject_image()),),
                                parameters={"texture": "paint"})
    with pytest.raises(ProtocolError) as error:
        mini.check_inputs(request)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    assert error.value.field == "body.parameters.texture"
    assert "download hunyuan3d-2mini --with paint" in error.value.hint


def _flashvdm_request(**parameters) -> GenerationRequest:
    return GenerationRequest(
        task="image",
        images=(InputImage(subject_image()),),
        seed=3,
        parameters={"decoding": "flashvdm", **SMALL, **parameters},
    )


def test_flashvdm_decodes_with_the_turbo_vae_component(
    mini: Hunyuan3D2MiniAdapter, tmp_path: Path
) -> None:
    flash = load_reference("flashvdm")
    component = tmp_path / "component"
    write_turbo_vae(flash, component / Hunyuan3D2MiniAdapter.turbo_vae_folder)
    mini.component_dirs["turbo-vae"] = component
    asset = mini.generate(_flashvdm_request(), Recorder(), CancelToken())
    assert len(asset.faces) > 0 and not asset.warnings
    models = mini._models
    assert models is not None and models.turbo_vae is not None
    # What the adapter loaded is what decodes: upstream's output for the turbo VAE.
    settings = ShapeSettings(
        octree_resolution=int(flash["turbo_resolution"]),
        min_resolution=int(flash["turbo_min_resolution"]),
        num_chunks=3000,
        decoding="flashvdm",
    )
    with torch.no_grad():
        logits, _ = ShapePipeline(models).decode(
            torch.from_numpy(load_reference("plain")["latents"]), settings
        )
    values = logits.numpy()[reference_mask(flash, "turbo")]
    scale = np.abs(flash["turbo_values"]).max()
    assert np.abs(values - flash["turbo_values"]).max() <= 1e-4 * scale
    # Kept with the model: the next flashvdm job reuses it.
    turbo = models.turbo_vae
    mini.generate(_flashvdm_request(adaptive_kv=False), Recorder(), CancelToken())
    assert mini._models is models and models.turbo_vae is turbo


def test_flashvdm_without_the_turbo_vae_warns(mini: Hunyuan3D2MiniAdapter) -> None:
    asset = mini.generate(_flashvdm_request(), Recorder(), CancelToken())
    assert len(asset.faces) > 0
    assert any("download hunyuan3d-2mini --with turbo-vae" in w for w in asset.warnings)
    assert mini._models is not None and mini._models.turbo_vae is None
    dense = mini.generate(_flashvdm_request(decoding="dense"), Recorder(), CancelToken())
    assert not dense.warnings


@pytest.mark.parametrize(
    ("adapter", "repo", "folder"),
    [
        (Hunyuan3D2MiniAdapter, "tencent/Hunyuan3D-2mini", "hunyuan3d-vae-v2-mini-turbo"),
        (Hunyuan3D2Adapter, "tencent/Hunyuan3D-2", "hunyuan3d-vae-v2-0-turbo"),
        (Hunyuan3D2MVAdapter, "tencent/Hunyuan3D-2", "hunyuan3d-vae-v2-0-turbo"),
    ],
)
def test_turbo_vae_component_is_declared(adapter, repo: str, folder: str) -> None:
    source = adapter.components["turbo-vae"]
    assert source.repo_id == repo and "paint" in adapter.components
    assert [f.path for f in source.files] == [
        f"{folder}/config.yaml",
        f"{folder}/model.fp16.safetensors",
    ]
