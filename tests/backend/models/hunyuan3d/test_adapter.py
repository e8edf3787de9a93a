"""The Hunyuan3D-2 adapters end to end on tiny variants in the official layout (CPU).

Model-specific behaviour: variants swapped on demand, multi-view slots, the turbo VAE and paint
components, the shared cut-out feeding Hunyuan's framing; the generic checks (tiny weights,
stages, cancel at each stage, rejections, unload, card codec) are the contract suite's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.hunyuan3d.adapter import (
    DELIGHT_FOLDER,
    LICENSE,
    PAINT_FOLDER,
    Hunyuan3D2Adapter,
    Hunyuan3D2MiniAdapter,
    Hunyuan3D2MVAdapter,
)
from backend.models.hunyuan3d.pipeline import ShapePipeline, ShapeSettings
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.hunyuan3d.conftest import (
    load_reference,
    reference_mask,
    write_reference_vae,
    write_reference_variant,
)

REPO = Path(__file__).resolve().parents[4]
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
    write_reference_variant(load_reference("turbo"), tmp_path / "hunyuan3d-dit-v2-mini-turbo")
    write_reference_variant(load_reference("plain"), tmp_path / "hunyuan3d-dit-v2-mini")
    adapter = Hunyuan3D2MiniAdapter(tmp_path)
    adapter.load("cpu")
    return adapter


@pytest.fixture
def multi_view(tmp_path: Path) -> Hunyuan3D2MVAdapter:
    write_reference_variant(load_reference("mv"), tmp_path / "hunyuan3d-dit-v2-mv-turbo")
    adapter = Hunyuan3D2MVAdapter(tmp_path)
    adapter.load("cpu")
    return adapter


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []
        self.messages: list[str] = []

    def __call__(self, stage: str, step: int, total: int, message: str = "", preview=None):
        self.events.append((stage, step, total))
        self.messages.append(message)

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(stage for stage, _, _ in self.events))


def test_info_shows_licence_and_weights(tmp_path: Path) -> None:
    info = Hunyuan3D2MiniAdapter(tmp_path).info()
    assert "European Union" in info.license and info.license == LICENSE
    assert not info.weights_present and "download hunyuan3d-2mini" in info.unavailable_reason


@pytest.mark.parametrize("variant", ["turbo", "standard"])
def test_generate_reports_every_step_and_chunk(mini: Hunyuan3D2MiniAdapter, variant: str) -> None:
    recorder = Recorder()
    request = GenerationRequest(
        task="image",
        images=(ImagePixels(subject_image()),),
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
        task="image", images=(ImagePixels(subject_image()),), parameters={"steps": 4, **SMALL}
    )
    with pytest.raises(Cancelled):
        mini.generate(request, progress, token)


def test_missing_variant_is_weights_missing(mini: Hunyuan3D2MiniAdapter) -> None:
    request = GenerationRequest(
        task="image", images=(ImagePixels(subject_image()),), parameters={"variant": "fast"}
    )
    with pytest.raises(ProtocolError) as error:
        mini.check_inputs(request)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    assert error.value.field == "parameters.variant"


def test_no_weights_folder_is_weights_missing() -> None:
    with pytest.raises(ProtocolError) as error:
        Hunyuan3D2MiniAdapter(None).load("cpu")
    assert error.value.code == ErrorCode.WEIGHTS_MISSING


def test_transparent_image_is_rejected(mini: Hunyuan3D2MiniAdapter) -> None:
    empty = np.zeros((32, 32, 4), dtype=np.uint8)
    request = GenerationRequest(task="image", images=(ImagePixels(empty),))
    with pytest.raises(ProtocolError) as error:
        mini.generate(request, Recorder(), CancelToken())
    assert error.value.code == ErrorCode.INVALID_IMAGE


def test_multi_view_any_subset(multi_view: Hunyuan3D2MVAdapter) -> None:
    images = tuple(
        ImagePixels(subject_image(i), view) for i, view in enumerate(("back", "front", "right"))
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
    images = tuple(ImagePixels(subject_image(), view) for view in views)
    with pytest.raises(ProtocolError) as error:
        multi_view.check_inputs(GenerationRequest(task="multi_image", images=images))
    assert error.value.code == code


def test_five_views_are_too_many(multi_view: Hunyuan3D2MVAdapter) -> None:
    images = tuple(ImagePixels(subject_image(), "front") for _ in range(5))
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
        images=(ImagePixels(subject_image()),),
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
    request = GenerationRequest(task="image", images=(ImagePixels(subject_image()),),
                                parameters={"texture": "paint"})
    with pytest.raises(ProtocolError) as error:
        mini.check_inputs(request)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    assert error.value.field == "parameters.texture"
    assert "download hunyuan3d-2mini --with paint" in error.value.hint


def _flashvdm_request(**parameters) -> GenerationRequest:
    return GenerationRequest(
        task="image",
        images=(ImagePixels(subject_image()),),
        seed=3,
        parameters={"decoding": "flashvdm", **SMALL, **parameters},
    )


def test_flashvdm_decodes_with_the_turbo_vae_component(
    mini: Hunyuan3D2MiniAdapter, tmp_path: Path
) -> None:
    flash = load_reference("flashvdm")
    component = tmp_path / "component"
    write_reference_vae(flash, component / Hunyuan3D2MiniAdapter.turbo_vae_folder)
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


def test_the_card_imports_no_torch() -> None:
    """The catalogue reads the cards: importing the adapter module loads no model code."""
    code = (
        "import sys; import backend.models.hunyuan3d.adapter; "
        "heavy = [m for m in ('torch', 'transformers', 'diffusers', "
        "'backend.models.hunyuan3d.loading', 'backend.models.hunyuan3d.paint_texture') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_paint_folder_names_match_the_paint_modules() -> None:
    from backend.models.hunyuan3d.paint import delight as paint_delight
    from backend.models.hunyuan3d.paint import loading as paint_loading

    assert (DELIGHT_FOLDER, PAINT_FOLDER) == (paint_delight.SUBFOLDER, paint_loading.SUBFOLDER)


def test_load_reads_turbo_and_a_job_swaps_variants(mini: Hunyuan3D2MiniAdapter) -> None:
    """load() reads the default (turbo) variant; a job naming another swaps it in, reported
    as a "load" stage, and keeps it for the next job; asking for turbo swaps back."""
    turbo = mini._models
    assert mini._variant == "turbo" and turbo is not None

    def run(variant: str) -> Recorder:
        recorder = Recorder()
        request = GenerationRequest(
            task="image", images=(ImagePixels(subject_image()),),
            parameters={"variant": variant, "steps": 1, "decoding": "dense", **SMALL},
        )  # fmt: skip
        mini.generate(request, recorder, CancelToken())
        assert set(recorder.stages) <= {"load", *Hunyuan3D2MiniAdapter.stage_weights}
        return recorder

    first = run("standard")
    standard = mini._models
    assert first.stages[0] == "load" and mini._variant == "standard" and standard is not turbo
    assert standard is not None and not standard.config.dit.guidance_embed
    assert "load" not in run("standard").stages and mini._models is standard
    assert run("turbo").stages[0] == "load" and mini._variant == "turbo"
    mini.unload()
    assert mini._models is None and mini._paint_models is None and not mini.loaded


def photo(opaque: bool, size: int = 64) -> np.ndarray:
    """A red disc off-centre on light grey: opaque (a JPEG) or with the disc as its alpha."""
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - 22) ** 2 + (xx - 40) ** 2 < 14**2
    pixels = np.empty((size, size, 4), np.uint8)
    pixels[..., :3] = np.where(inside[..., None], (200, 40, 40), (235, 235, 235))
    pixels[..., 3] = 255 if opaque else np.where(inside, 255, 0)
    return pixels


def test_an_opaque_photo_is_cut_out_like_its_transparent_png(
    mini: Hunyuan3D2MiniAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The template's cut-out (background="auto") reaches Hunyuan's framing: an opaque photo
    gives the mesh of its cut-out PNG; background="none" keeps the backdrop in the frame."""
    monkeypatch.delenv("DREAMCAD_BACKGROUND_MODEL", raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "no-segmentation-model"))

    def vertices(pixels: np.ndarray, background: str) -> np.ndarray:
        request = GenerationRequest(
            task="image", images=(ImagePixels(pixels),), seed=3,
            parameters={"steps": 2, "decoding": "dense", "background": background, **SMALL},
        )  # fmt: skip
        return mini.generate(request, Recorder(), CancelToken()).vertices

    cut_out = vertices(photo(opaque=False), "auto")
    np.testing.assert_array_equal(vertices(photo(opaque=True), "auto"), cut_out)
    kept = vertices(photo(opaque=True), "none")
    assert kept.shape != cut_out.shape or not np.array_equal(kept, cut_out)


def test_a_transparent_view_is_named_by_its_index(multi_view: Hunyuan3D2MVAdapter) -> None:
    images = (ImagePixels(subject_image(), "front"),
              ImagePixels(np.zeros((32, 32, 4), np.uint8), "back"))  # fmt: skip
    request = GenerationRequest(task="multi_image", images=images,
                                parameters={"background": "none", **SMALL})  # fmt: skip
    with pytest.raises(ProtocolError) as error:
        multi_view.generate(request, Recorder(), CancelToken())
    assert error.value.code == ErrorCode.INVALID_IMAGE and error.value.field == "images[1]"
