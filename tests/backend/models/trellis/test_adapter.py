"""adapter.py: the four cards, their request checks, quality presets, components and a CPU run
through the template (registered explicitly: the entry points need a reinstall)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.common.background_choice import BACKGROUND_PARAMETER
from backend.models.registry import ModelRegistry
from backend.models.trellis import testing
from backend.models.trellis.adapter import (
    TrellisImageAdapter,
    TrellisTextBaseAdapter,
    TrellisTextLargeAdapter,
    TrellisTextXLargeAdapter,
    mesh_to_raw_asset,
    run_warnings,
    stage_settings,
)
from backend.models.trellis.sampler import SamplerSettings
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.parameters import resolve_parameters
from tests.backend.models.trellis.conftest import TinyModel, cutout

CARDS = (TrellisImageAdapter, TrellisTextBaseAdapter, TrellisTextLargeAdapter,
         TrellisTextXLargeAdapter)  # fmt: skip
ADAPTERS = {cls.id: cls for cls in CARDS}
ROOT = Path(__file__).resolve().parents[4]


def registry(*models: TinyModel) -> ModelRegistry:
    paths: dict[str, Path] = {}
    for model in models:
        paths[model.model_id] = model.folder
        for name, folder in model.components.items():
            paths[f"{model.model_id}:{name}"] = folder
    return ModelRegistry(ADAPTERS, weights_paths=paths)


def request(task: str = "image", images: int = 1, **parameters) -> GenerationRequest:
    pixels = tuple(ImagePixels(cutout(), view="front") for _ in range(images))
    return GenerationRequest(task=task, prompt="a chair", images=pixels, seed=5,
                             parameters={**testing.TINY_PARAMETERS["trellis-image-large"],
                                         **parameters})  # fmt: skip


def test_the_cards_import_no_torch() -> None:
    script = "import sys, backend.models.trellis.adapter; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT)  # fmt: skip
    assert out.stdout.strip() == "False", out.stderr


def test_the_cards() -> None:
    image = TrellisImageAdapter
    assert image.tasks == ("image", "multi_image") and image.max_images == 8
    assert BACKGROUND_PARAMETER in image.parameters
    assert set(image.components) == {"dinov2", "gaussians", "radiance_field"}
    assert image.required_components == (
        "dinov2",
    )
    for cls in ADAPTERS.values():
        assert cls.license == "MIT" and cls.cuda_dtype == "float16" and cls.vram_mb > 0
        names = {f.path for f in cls.weights.files}
        assert "pipeline.json" in names and not any("_enc_" in name for name in names)
        assert not any("slat_dec_gs" in n or "slat_dec_rf" in n for n in names)  # optional
        gaussians = {f.path for f in cls.components["gaussians"].files}
        assert gaussians == {f"ckpts/slat_dec_gs_swin8_B_64l8gs32_fp16.{ext}"
                             for ext in ("json", "safetensors")}  # fmt: skip
        assert "gaussians" not in cls.required_components
        assert next(p for p in cls.parameters if p.name == "gaussians").default is False
        rf = {f.path for f in cls.components["radiance_field"].files}
        assert rf == {f"ckpts/slat_dec_rf_swin8_B_64l8r16_fp16.{ext}"
                      for ext in ("json", "safetensors")}  # fmt: skip
        assert "radiance_field" not in cls.required_components
        source = next(p for p in cls.parameters if p.name == "colour_source")
        assert source.default == "mesh" and source.choices == ("mesh", "radiance_field")
    for cls in (TrellisTextBaseAdapter, TrellisTextLargeAdapter, TrellisTextXLargeAdapter):
        assert cls.tasks == ("text",) and BACKGROUND_PARAMETER not in cls.parameters
        assert set(cls.components) == {"decoders", "clip", "gaussians", "radiance_field"}
        decoders = {f.path for f in cls.components["decoders"].files}
        assert decoders == {f"{stem}.{ext}" for stem in
                            ("ckpts/ss_dec_conv3d_16l8_fp16",
                             "ckpts/slat_dec_mesh_swin8_B_64l8m256c_fp16")
                            for ext in ("json", "safetensors")}  # fmt: skip
        assert not any("img" in f.path for f in cls.weights.files)


@pytest.mark.parametrize(
    ("quality", "overrides", "expected"),
    [
        ("draft", {}, ((12, 7.5), (12, 3.0))),
        ("standard", {}, ((25, 5.0), (25, 5.0))),
        ("high", {}, ((50, 5.0), (50, 5.0))),
        ("draft", {"structure_steps": 30, "latent_guidance": 4.5}, ((30, 7.5), (12, 4.5))),
    ],
)
def test_quality_presets_and_overrides(quality: str, overrides: dict, expected: tuple) -> None:
    params = resolve_parameters(TrellisImageAdapter.parameters,
                                {"quality": quality, "rescale_t": 2.0, **overrides})  # fmt: skip
    release = SamplerSettings(25, 5.0, (0.5, 1.0), 3.0)
    structure, latent = stage_settings(params, (release, release))
    got = ((structure.steps, structure.cfg_strength), (latent.steps, latent.cfg_strength))
    assert got == expected
    assert structure.rescale_t == latent.rescale_t == 2.0 and latent.cfg_interval == (0.5, 1.0)


@pytest.mark.parametrize(
    ("what", "bad", "code", "field"),
    [
        ("two images for task image", request(images=2), "too_many_frames", "images"),
        ("one view for multi_image", request("multi_image"), "missing_field", "images"),
        ("nine views", request("multi_image", images=9), "too_many_frames", "images"),
        ("interval upside down", request(cfg_interval_start=0.9, cfg_interval_end=0.6),
         "invalid_parameter", "parameters.cfg_interval_start"),
        ("too many steps", request(structure_steps=51), "out_of_range",
         "parameters.structure_steps"),
        ("unknown mode", request(multi_image_mode="vote"), "invalid_parameter",
         "parameters.multi_image_mode"),
        ("text for the image model", request("text", images=0), "unsupported_task", "task"),
    ],
)  # fmt: skip
def test_the_image_model_refuses_what_it_cannot_run(what, bad, code, field) -> None:
    with pytest.raises(ProtocolError) as caught:
        TrellisImageAdapter().check_inputs(bad)
    assert (caught.value.info.code, caught.value.info.field) == (code, field), what


def test_the_text_models_take_a_prompt_only() -> None:
    adapter = TrellisTextXLargeAdapter()
    resolved = adapter.check_inputs(GenerationRequest(task="text", prompt="a lamp"))
    assert resolved.parameters["quality"] == "standard"
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(request("image"))
    assert caught.value.info.code == "unsupported_task"
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(GenerationRequest(task="text", prompt="  "))
    assert caught.value.info.field == "prompt"
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(
            GenerationRequest(task="text", prompt="a", parameters={"background": "auto"})
        )
    assert caught.value.info.field == "parameters.background"


def test_a_missing_component_says_how_to_fetch_it(tiny_image: TinyModel) -> None:
    adapter = ModelRegistry(ADAPTERS, weights_paths={"trellis-image-large": tiny_image.folder}
                            ).create("trellis-image-large")  # fmt: skip
    assert not adapter.weights_present() and "dinov2" in adapter.info().unavailable_reason
    with pytest.raises(ProtocolError) as caught:
        adapter.load("cpu")
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    assert "dinov2" in caught.value.info.message  # a plain download fetches required parts
    assert "dreamcad-backend download trellis-image-large" in caught.value.info.hint


class Recorder:
    def __init__(self, cancel_at: str | None = None, token: CancelToken | None = None) -> None:
        self.stages: list[str] = []
        self.cancel_at, self.token = cancel_at, token

    def __call__(self, stage, step, total, message="", preview=None) -> None:
        self.stages.append(stage)
        if stage == self.cancel_at and self.token is not None:
            self.token.cancel()


def opaque_photo() -> np.ndarray:
    """An orange disc on a plain grey table, no alpha: the template's cut-out must find it."""
    yy, xx = np.mgrid[:96, :96]
    pixels = np.full((96, 96, 4), (215, 215, 215, 255), np.uint8)
    pixels[(yy - 48) ** 2 + (xx - 48) ** 2 < 30**2] = (230, 120, 40, 255)
    return pixels


def test_a_cpu_run_through_the_template(tiny_image: TinyModel) -> None:
    adapter = registry(tiny_image).create("trellis-image-large")
    adapter.load("cpu")
    assert adapter.pipeline.networks["sparse_structure_flow_model"].dtype == torch.float32
    assert adapter.pipeline.networks["slat_flow_model"].dtype == torch.float32
    run = GenerationRequest(task="image", images=(ImagePixels(opaque_photo()),), seed=1,
                            parameters=testing.TINY_PARAMETERS["trellis-image-large"])  # fmt: skip
    recorder = Recorder()
    raw = adapter.generate(adapter.check_inputs(run), recorder, CancelToken())
    assert len(raw.faces) > 0 and raw.vertex_colors is not None and raw.color_field is not None
    assert raw.name == "trellis-image-large" and raw.warnings == []
    ply = raw.extra_files["gaussians.ply"]  # TINY_PARAMETERS ask for the Gaussians
    assert ply.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert recorder.stages[0] == "condition"
    assert list(dict.fromkeys(recorder.stages)) == ["condition", "structure", "latent", "decode",
                                                    "mesh"]  # fmt: skip
    adapter.unload()
    assert adapter.pipeline is None and not adapter.loaded


def test_the_colour_field_follows_the_vertex_colours(tiny_image: TinyModel) -> None:
    """The bake's field and the mesh's vertex colours come from the same decoded colours, in
    the same frame: at the mesh's own vertices the field is much nearer each vertex's colour
    than another vertex's (random weights make the colours noisy from one grid vertex to the
    next, and FlexiCubes interpolates them along deformed edges, the field trilinearly; a
    field in the wrong frame is as far off as a shuffle)."""
    adapter = registry(tiny_image).create("trellis-image-large")
    adapter.load("cpu")
    run = GenerationRequest(task="image", images=(ImagePixels(opaque_photo()),), seed=1,
                            parameters={**testing.TINY_PARAMETERS["trellis-image-large"],
                                        "gaussians": False})  # fmt: skip
    raw = adapter.generate(adapter.check_inputs(run), Recorder(), CancelToken())
    assert raw.extra_files == {}
    field = raw.color_field(raw.vertices)
    assert field.shape == (len(raw.vertices), 3) and field.dtype == np.float32
    shuffled = raw.vertex_colors[np.random.default_rng(0).permutation(len(field))]
    assert np.abs(field - raw.vertex_colors).mean() < 0.6 * np.abs(field - shuffled).mean()
    assert field.min() >= 0 and field.max() <= 1 and field.std(axis=0).min() > 0.01


def test_the_radiance_field_is_a_colour_source(tiny_image: TinyModel) -> None:
    """colour_source=radiance_field: the same mesh (same seed), its colour from the RF decoder.
    Random weights say nothing of which is better; they do show the field is the RF's own (not
    the mesh decoder's), varies over the surface, and stays in [0, 1]."""
    adapter = registry(tiny_image).create("trellis-image-large")
    adapter.load("cpu")
    runs = {}
    for source in ("mesh", "radiance_field"):
        parameters = {**testing.TINY_PARAMETERS["trellis-image-large"], "gaussians": False,
                      "colour_source": source}  # fmt: skip
        run = GenerationRequest(task="image", images=(ImagePixels(opaque_photo()),), seed=1,
                                parameters=parameters)  # fmt: skip
        runs[source] = adapter.generate(adapter.check_inputs(run), Recorder(), CancelToken())
    mesh, rf = runs["mesh"], runs["radiance_field"]
    assert np.array_equal(mesh.vertices, rf.vertices)  # the colour source changes colour only
    from_mesh, from_rf = mesh.color_field(mesh.vertices), rf.color_field(rf.vertices)
    assert from_rf.shape == from_mesh.shape and from_rf.dtype == np.float32
    assert from_rf.min() >= 0 and from_rf.max() <= 1 and from_rf.std(axis=0).min() > 1e-3
    assert np.abs(from_rf - from_mesh).mean() > 0.01


def test_the_radiance_field_needs_its_decoder(tiny_text: TinyModel) -> None:
    paths = {tiny_text.model_id: tiny_text.folder, **{
        f"{tiny_text.model_id}:{name}": folder
        for name, folder in tiny_text.components.items() if name != "radiance_field"}}  # fmt: skip
    adapter = ModelRegistry(ADAPTERS, weights_paths=paths).create(tiny_text.model_id)
    asked = GenerationRequest(task="text", prompt="a lamp",
                              parameters={"colour_source": "radiance_field"})
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(asked)
    info = caught.value.info
    assert (info.code, info.field) == ("weights_missing", "parameters.colour_source")
    assert "--with radiance_field" in caught.value.info.hint
    registry(tiny_text).create(tiny_text.model_id).check_inputs(asked)  # with it: accepted


def test_gaussians_need_their_decoder(tiny_text: TinyModel) -> None:
    paths = {tiny_text.model_id: tiny_text.folder, **{
        f"{tiny_text.model_id}:{name}": folder
        for name, folder in tiny_text.components.items() if name != "gaussians"}}  # fmt: skip
    adapter = ModelRegistry(ADAPTERS, weights_paths=paths).create(tiny_text.model_id)
    assert adapter.weights_present()  # optional: the model still runs without it
    asked = GenerationRequest(task="text", prompt="a lamp", parameters={"gaussians": True})
    with pytest.raises(ProtocolError) as caught:
        adapter.check_inputs(asked)
    info = caught.value.info
    assert (info.code, info.field) == ("weights_missing", "parameters.gaussians")
    assert "--with gaussians" in caught.value.info.hint
    registry(tiny_text).create(tiny_text.model_id).check_inputs(asked)  # with it: accepted


def test_a_cancel_stops_within_a_step(tiny_image: TinyModel) -> None:
    adapter = registry(tiny_image).create("trellis-image-large")
    adapter.load("cpu")
    token = CancelToken()
    recorder = Recorder(cancel_at="structure", token=token)
    with pytest.raises(Cancelled):
        adapter.generate(request("image"), recorder, token)
    assert recorder.stages.count("structure") == 1


def test_the_text_model_loads_clip_and_the_shared_decoders(tiny_text: TinyModel) -> None:
    adapter = registry(tiny_text).create("trellis-text-base")
    adapter.load("cpu")
    assert adapter.pipeline.config.is_text and adapter.pipeline.has_gaussian_decoder
    run = GenerationRequest(task="text", prompt="a red chair", seed=2,
                            parameters=testing.TINY_PARAMETERS["trellis-text-base"])  # fmt: skip
    raw = adapter.generate(adapter.check_inputs(run), Recorder(), CancelToken())
    assert len(raw.faces) > 0 and "gaussians.ply" in raw.extra_files


def test_too_few_steps_for_the_views_is_a_warning() -> None:
    from backend.models.trellis.pipeline import TrellisRequest

    views = tuple(np.zeros((4, 4, 4), np.uint8) for _ in range(3))
    run = TrellisRequest(images=views, structure=SamplerSettings(2, 5.0),
                         latent=SamplerSettings(12, 3.0))  # fmt: skip
    (warning,) = run_warnings(run)
    assert "3 views but 2 structure steps" in warning
    assert run_warnings(TrellisRequest(images=views, structure=SamplerSettings(2, 5.0),
                                       multi_image="multidiffusion")) == []  # fmt: skip


class _Mesh:
    def __init__(self) -> None:
        self.vertices = torch.tensor([[0.1, 0.2, 0.3], [0.0, -0.5, 0.5], [0.4, 0.0, -0.1]])
        self.faces = torch.tensor([[0, 1, 2]])
        self.colours = torch.tensor([[0.5, 1.2, -0.1, 0, 0, 0]] * 3)


def test_the_mesh_is_turned_to_y_up_with_its_vertex_colours() -> None:
    raw = mesh_to_raw_asset(_Mesh())
    assert np.allclose(raw.vertices[0], [0.1, 0.3, -0.2])  # (x, y, z) -> (x, z, -y)
    assert np.allclose(raw.vertex_colors, [[0.5, 1.0, 0.0]] * 3)
    assert raw.faces.tolist() == [[0, 1, 2]] and raw.color_field is None


@pytest.mark.parametrize("policy", ["0", "1"])
def test_the_load_compiles_the_flows_as_the_policy_says(
    tiny_image: TinyModel, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    monkeypatch.setenv("DREAMCAD_COMPILE", policy)
    adapter = registry(tiny_image).create("trellis-image-large")
    adapter.load("cpu")
    flows = ("sparse_structure_flow_model", "slat_flow_model")
    compiled = {
        block._compiled_call_impl is not None
        for role in flows
        for block in adapter.pipeline.networks[role].blocks
    }
    assert compiled == {policy == "1"}
    adapter.unload()
