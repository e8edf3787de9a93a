"""The model contract, checked on every registered adapter (the ``dreamcad.models`` entry points).

For each model: tiny random weights written in its official layout by its family's
``testing.py``, loaded on the CPU through a real ModelCache; one minimal request per task gives
a valid RawAsset; progress stages are declared and never go back; a cancel at any stage ends the
run within one step; bad requests are refused with their code and a request-relative field;
``unload`` frees what ``load`` made; the card round-trips through the protocol codec. A family's
own tests then only cover parity with upstream and its own behaviour.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import GenerationRequest, ImagePixels, ModelAdapter
from backend.models.common.background_choice import BACKGROUND_PARAMETER
from backend.models.registry import ModelCache, ModelRegistry, discover_adapters
from shared_protocol.codec import from_wire, to_wire
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ModelInfo

ADAPTERS = discover_adapters()
MODEL_IDS = sorted(ADAPTERS)
VIEWS = ("front", "left", "back", "right")
TEMPLATE_METHODS = ("load", "generate", "unload", "check_inputs", "inner_model")


def family_testing(cls: type[ModelAdapter]) -> Any:
    """The ``testing`` module of the family package that defines ``cls``."""
    return importlib.import_module(cls.__module__.rsplit(".", 1)[0] + ".testing")


class TinyWeights:
    """A registry of every installed model whose tiny weights are written on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: dict[str, Path] = {}
        self.registry = ModelRegistry(ADAPTERS, weights_paths=self.paths)
        self.cache = ModelCache(self.registry, "cpu", None)

    def ensure(self, model_id: str) -> ModelRegistry:
        cls = ADAPTERS[model_id]
        if "texture" in cls.tasks and "image_model" in {p.name for p in cls.parameters}:
            self.ensure(TEXTURING_MODEL)  # the bridge's texture task runs it inside
        if cls.weights is not None and model_id not in self.paths:
            testing = family_testing(cls)
            folder = testing.write_tiny_weights(self.root / model_id, model_id)
            if writer := getattr(testing, "write_tiny_components", None):
                for name, path in writer(self.root / f"{model_id}-components", model_id).items():
                    self.paths[f"{model_id}:{name}"] = path
            self.paths[model_id] = folder
            self.registry = ModelRegistry(ADAPTERS, weights_paths=self.paths)
            self.cache.registry = self.registry
        return self.registry


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyWeights:
    return TinyWeights(tmp_path_factory.mktemp("tiny-weights"))


def photo(size: int = 96) -> np.ndarray:
    """An opaque photo: a shaded orange disc on a plain light-grey table, with a little noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.3) ** 2
    rgb = np.full((size, size, 3), 215.0)
    shade = 0.75 + 0.25 * (1 - yy / size)
    rgb[inside] = np.array([230.0, 120.0, 40.0]) * shade[inside, None]
    rgb += rng.normal(0, 2.0, rgb.shape)
    pixels = np.dstack([np.clip(rgb, 0, 255), np.full((size, size), 255.0)])
    return pixels.astype(np.uint8)


def tiny_parameters(cls: type[ModelAdapter]) -> dict[str, Any]:
    return dict(family_testing(cls).TINY_PARAMETERS.get(cls.id, {}))


def small_mesh() -> RawAsset:
    """The artist's mesh of tasks texture and optimize: a small UV-less ball."""
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    return RawAsset(ball.vertices, ball.faces, name="ball")


# Texture through the picture bridge needs an image model that textures; its tiny paint run.
TEXTURING_MODEL = "hunyuan3d-2mini"
TINY_PAINT = {"paint_steps": 1, "delight_steps": 1, "paint_view_size": 16}


def minimal_request(cls: type[ModelAdapter], task: str, **changes: Any) -> GenerationRequest:
    images: tuple[ImagePixels, ...] = ()
    parameters = tiny_parameters(cls)
    if task == "image" or (task == "texture" and "text" not in cls.tasks):
        images = (ImagePixels(photo()),)
    elif task == "multi_image":
        images = tuple(ImagePixels(photo(), view=v) for v in VIEWS[: min(4, cls.max_images)])
    if task == "texture":
        known = {p.name for p in cls.parameters}
        parameters.update({k: v for k, v in TINY_PAINT.items() if k in known})
        if "image_model" in known:
            import json

            inner = {**family_testing(ADAPTERS[TEXTURING_MODEL]).TINY_PARAMETERS[TEXTURING_MODEL],
                     **TINY_PAINT}  # fmt: skip
            parameters["image_model"] = TEXTURING_MODEL
            parameters["image_model_parameters"] = json.dumps(inner)
    values = dict(
        task=task, prompt="a small orange ball", images=images, seed=3,
        parameters=parameters, target_faces=500, texture_size=256,
        mesh=small_mesh() if task in ("texture", "optimize") else None,
    )  # fmt: skip
    values.update(changes)
    return GenerationRequest(**values)


class Recorder:
    """A progress callback that keeps (stage, step, total) and can cancel at a chosen stage."""

    def __init__(self, cancel_at: str | None = None, token: CancelToken | None = None) -> None:
        self.reports: list[tuple[str, int, int]] = []
        self.cancel_at, self.token = cancel_at, token
        self.after_cancel = 0

    def __call__(self, stage, step, total, message="", preview=None) -> None:
        if self.token is not None and self.token.cancelled:
            self.after_cancel += 1
        self.reports.append((stage, step, total))
        if stage == self.cancel_at and self.token is not None:
            self.token.cancel()


def run_task(cache: ModelCache, model_id: str, task: str) -> tuple[RawAsset, Recorder]:
    cls = ADAPTERS[model_id]
    recorder = Recorder()
    with cache.using(model_id) as adapter:
        request = adapter.check_inputs(minimal_request(cls, task))
        raw = adapter.generate(request, recorder, CancelToken())
    return raw, recorder


TASK_CASES = [(m, t) for m in MODEL_IDS for t in ADAPTERS[m].tasks]


@pytest.mark.parametrize(("model_id", "task"), TASK_CASES)
def test_a_minimal_request_gives_a_valid_raw_asset(tiny, model_id, task) -> None:
    tiny.ensure(model_id)
    raw, recorder = run_task(tiny.cache, model_id, task)
    assert isinstance(raw, RawAsset)
    assert len(raw.faces) > 0 and np.isfinite(raw.vertices).all()
    assert raw.faces.min() >= 0 and raw.faces.max() < len(raw.vertices)
    declared = {"load", *ADAPTERS[model_id].stage_weights}  # "load": the runner's, or a
    # model swapping weights (a Hunyuan variant) inside generate
    stages = [stage for stage, _, _ in recorder.reports]
    assert stages, "a model reports progress"
    assert set(stages) <= set(declared), f"undeclared stages {set(stages) - set(declared)}"
    # Never backwards: a stage once left is not reported again, and steps within a stage grow.
    left: set[str] = set()
    for (stage, step, total), previous in zip(recorder.reports[1:], recorder.reports, strict=False):
        if stage != previous[0]:
            left.add(previous[0])
            assert stage not in left, f"{stage} reported again after {previous[0]}"
        else:
            done, before = step / max(total, 1), previous[1] / max(previous[2], 1)
            assert done >= before, f"{stage} went from {previous[1:]} to {(step, total)}"
        assert 0 <= step <= max(total, 1)


@pytest.mark.parametrize(("model_id", "task"), TASK_CASES)
def test_cancel_at_every_stage_ends_within_one_step(tiny, model_id, task) -> None:
    tiny.ensure(model_id)
    cpu_cache = tiny.cache
    _, finished = run_task(cpu_cache, model_id, task)
    stages = list(dict.fromkeys(stage for stage, _, _ in finished.reports))
    cls = ADAPTERS[model_id]
    for stage in stages:
        token = CancelToken()
        recorder = Recorder(cancel_at=stage, token=token)
        # A cancel in the last stage may also just let the run finish: the runner checks the
        # token right after generate.
        with cpu_cache.using(model_id) as adapter, contextlib.suppress(Cancelled):
            adapter.generate(minimal_request(cls, task), recorder, token)
        assert recorder.after_cancel <= 1, (
            f"{model_id} went on for {recorder.after_cancel} reports after a cancel in {stage}"
        )
    assert len(stages) >= 2, "a model reports at least two stages"


def bad_requests(cls: type[ModelAdapter]) -> list[tuple[str, GenerationRequest, str, str]]:
    """(what, request, expected code, expected field) for one model."""
    task = cls.tasks[0]
    cases = []
    for other in ("text", "image", "multi_image"):
        if other not in cls.tasks:
            cases.append(("wrong task", minimal_request(cls, other), "unsupported_task", "task"))
    too_many = tuple(ImagePixels(photo(), view=VIEWS[i % 4]) for i in range(cls.max_images + 1))
    cases.append(("too many images", minimal_request(cls, task, images=too_many),
                  "too_many_frames", "images"))  # fmt: skip
    cases.append(("unknown parameter", minimal_request(cls, task, parameters={"nope": 1}),
                  "invalid_parameter", "parameters.nope"))  # fmt: skip
    bounded = [p for p in cls.parameters if p.kind in ("int", "float") and p.maximum is not None]
    if bounded:
        spec = bounded[0]
        value = spec.maximum + 1 if spec.kind == "int" else spec.maximum * 2 + 1.0
        cases.append(("out of range", minimal_request(cls, task, parameters={spec.name: value}),
                      "out_of_range", f"parameters.{spec.name}"))  # fmt: skip
    floats = [p for p in cls.parameters if p.kind == "float"]
    if floats:
        cases.append(("not finite", minimal_request(cls, task, parameters={floats[0].name: np.nan}),
                      "invalid_parameter", f"parameters.{floats[0].name}"))  # fmt: skip
    return cases


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_bad_requests_are_refused_with_their_code_and_field(tiny, model_id) -> None:
    adapter = tiny.ensure(model_id).create(model_id)
    for what, request, code, field in bad_requests(ADAPTERS[model_id]):
        with pytest.raises(ProtocolError) as caught:
            adapter.check_inputs(request)
        assert (caught.value.info.code, caught.value.info.field) == (code, field), what


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_the_card_round_trips_through_the_codec(tiny, model_id) -> None:
    info = tiny.ensure(model_id).create(model_id).info()
    frames: list[bytes] = []
    assert from_wire(ModelInfo, to_wire(info, frames), frames, "info", set()) == info
    assert info.weights_present


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_the_template_is_not_overridden(model_id) -> None:
    cls = ADAPTERS[model_id]
    for name in TEMPLATE_METHODS:
        assert getattr(cls, name) is getattr(ModelAdapter, name), f"{model_id} overrides {name}"
    assert cls.stage_weights, "declare the stages the model reports"
    if {"image", "multi_image"} & set(cls.tasks):
        assert BACKGROUND_PARAMETER in cls.parameters, "image models take the shared cut-out"


def torch_objects(root: object, depth: int = 3) -> list[object]:
    """torch modules and tensors reachable from ``root``'s attributes (a few levels down)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found, seen, frontier = [], set(), [root]
    for _ in range(depth):
        next_frontier = []
        for obj in frontier:
            values = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
            if isinstance(obj, dict):
                values = list(obj.values())
            elif isinstance(obj, list | tuple):
                values = list(obj)
            for value in values:
                if id(value) in seen or isinstance(value, ModelCache | ModelRegistry):
                    continue
                seen.add(id(value))
                if isinstance(value, torch.nn.Module | torch.Tensor):
                    found.append(value)
                elif hasattr(value, "__dict__") or isinstance(value, dict | list | tuple):
                    next_frontier.append(value)
        frontier = next_frontier
    return found


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_unload_releases_what_load_made(tiny, model_id) -> None:
    cache = ModelCache(tiny.ensure(model_id), "cpu", None)
    adapter = cache.acquire(model_id)
    held = [weakref.ref(obj) for obj in torch_objects(adapter)]
    cache.clear()
    gc.collect()
    assert not adapter.loaded
    alive = [ref() for ref in held if ref() is not None]
    assert not alive, f"{len(alive)} torch objects outlive unload, e.g. {type(alive[0])}"
    with pytest.raises(ProtocolError) as caught:
        adapter.generate(minimal_request(ADAPTERS[model_id], ADAPTERS[model_id].tasks[0]),
                         Recorder(), CancelToken())  # fmt: skip
    assert caught.value.code == ErrorCode.MODEL_FAILED


IMAGE_MODELS = [m for m in MODEL_IDS if {"image", "multi_image"} & set(ADAPTERS[m].tasks)]


class _Captured(Exception):  # noqa: N818 - a sentinel, not an error
    pass


def test_the_same_photo_gives_every_image_model_the_same_mask() -> None:
    """What each image model receives from one opaque photo: the same cut-out mask."""
    masks = {}
    for model_id in IMAGE_MODELS:
        base = ADAPTERS[model_id]

        class Capturing(base):  # type: ignore[misc, valid-type]
            def _generate(self, request, progress, cancel):
                masks[self.id] = request.images[0].pixels[..., 3].copy()
                raise _Captured

        adapter = Capturing()
        adapter.device = "cpu"  # the input path runs before any weights are touched
        task = "image" if "image" in base.tasks else "multi_image"
        request = GenerationRequest(task=task, images=(ImagePixels(photo(), view="front"),))
        with pytest.raises(_Captured):
            adapter.generate(request, Recorder(), CancelToken())
    assert len(masks) == len(IMAGE_MODELS) >= 2
    first = next(iter(masks.values()))
    assert 0.1 < (first > 0).mean() < 0.6, "the table is cut away, the disc kept"
    for model_id, mask in masks.items():
        assert np.array_equal(mask, first), f"{model_id} got another mask"


def test_the_catalogue_imports_no_model_code() -> None:
    """Listing every model (the hello reply's catalogue) imports neither torch nor model code."""
    script = (
        "import sys\n"
        "from backend.handlers import model_infos\n"
        "from backend.models.registry import ModelRegistry\n"
        "infos = model_infos(ModelRegistry())\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules)\n"
        "print(len(infos), '+'.join(heavy) or '-')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    count, heavy = out.stdout.split()[-2:]
    assert int(count) == len(ADAPTERS), out.stderr
    assert heavy == "-", f"the catalogue imported {heavy}"
