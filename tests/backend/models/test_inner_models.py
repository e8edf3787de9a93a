"""Composite models take their inner models from the worker's model cache (issue 12).

mvdream's reconstructor and the bridge's image model come from the ModelCache that runs the
job (``ModelAdapter.inner_model``): loaded once per device and shared with direct jobs, and
counted against the VRAM budget, where an idle model makes room but the composite that is
using the inner model is never unloaded under it. Real adapters, tiny weights, real jobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import CancelToken
from backend.jobs.runner import run_job
from backend.jobs.spec import JobSpec
from backend.models.base import GenerationRequest, ImagePixels, ModelAdapter
from backend.models.builtin.inflate import InflateAdapter
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.image_bridge import testing as bridge_testing
from backend.models.image_bridge.adapter import ImageBridgeAdapter
from backend.models.mvdream import testing as mvdream_testing
from backend.models.mvdream.adapter import MVDreamAdapter
from backend.models.registry import ModelCache, ModelRegistry


class CountingInflate(InflateAdapter):
    """The real inflate; it counts how often it is loaded and unloaded (every instance)."""

    loads = 0
    unloads = 0

    def _load(self, device: str, dtype: str) -> None:
        CountingInflate.loads += 1
        super()._load(device, dtype)

    def _release(self) -> None:
        CountingInflate.unloads += 1
        super()._release()


class CountingMVDream(MVDreamAdapter):
    unloads = 0

    def _release(self) -> None:
        CountingMVDream.unloads += 1
        super()._release()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("composites")
    return {
        "mvdream": mvdream_testing.write_tiny_weights(folder / "mvdream", "mvdream"),
        "image-bridge": bridge_testing.write_tiny_weights(folder / "bridge", "image-bridge"),
    }


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    CountingInflate.loads = CountingInflate.unloads = CountingMVDream.unloads = 0


def _registry(weights: dict[str, Path], **vram_mb: int) -> ModelRegistry:
    """The composites, inflate and procedural; ``vram_mb`` overrides cards by model id."""
    classes: dict[str, type[ModelAdapter]] = {
        "mvdream": CountingMVDream, "image-bridge": ImageBridgeAdapter,
        "inflate": CountingInflate, "procedural": ProceduralAdapter,
    }
    for model_id, size in vram_mb.items():
        classes[model_id] = type(classes[model_id].__name__, (classes[model_id],),
                                 {"vram_mb": size})
    return ModelRegistry(classes, weights_paths=weights)


def _spec(model: str, task: str = "text", **parameters) -> JobSpec:
    tiny = {**mvdream_testing.TINY_PARAMETERS, **bridge_testing.TINY_PARAMETERS}.get(model, {})
    return JobSpec(model=model, task=task, prompt="a red mug", seed=5, target_faces=500,
                   texture_size=256, parameters={**tiny, **parameters})


def _disc() -> ImagePixels:
    size = 64
    rows, cols = np.mgrid[:size, :size]
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[(rows - 32) ** 2 + (cols - 30) ** 2 < 20**2] = (200, 60, 40, 255)
    return ImagePixels(pixels)


def _run(cache: ModelCache, spec: JobSpec, images: tuple[ImagePixels, ...] = ()) -> None:
    run_job(cache, spec, images, lambda progress, preview: None, CancelToken())


def test_inner_model_is_loaded_once_and_shared_with_direct_jobs(weights) -> None:
    cache = ModelCache(_registry(weights), "cpu", budget_mb=12_000)
    _run(cache, _spec("mvdream", reconstructor="inflate"))
    assert "inflate" in cache.loaded()  # the reconstructor lives in the worker's cache
    _run(cache, _spec("inflate", task="image"), (_disc(),))
    _run(cache, _spec("image-bridge", image_model="inflate"))
    assert CountingInflate.loads == 1 and CountingInflate.unloads == 0
    assert sorted(cache.loaded()) == ["image-bridge", "inflate", "mvdream"]
    cache.clear()
    assert CountingInflate.unloads == 1


def _generate_mvdream(cache: ModelCache) -> None:
    with cache.using("mvdream") as adapter:
        request = GenerationRequest(task="text", prompt="a red mug", seed=5,
                                    parameters=mvdream_testing.TINY_PARAMETERS["mvdream"])
        adapter.generate(adapter.check_inputs(request), lambda *a, **k: None, CancelToken())


def test_inner_model_vram_counts_and_makes_idle_models_room(weights) -> None:
    registry = _registry(weights, mvdream=600, inflate=300, procedural=300)
    cache = ModelCache(registry, "cpu", budget_mb=1_000)
    cache.acquire("procedural")  # an idle model from an earlier job
    _generate_mvdream(cache)  # 300 + 600 fit; inflate's 300 more do not: procedural goes
    assert cache.loaded() == ["mvdream", "inflate"]


def test_the_composite_in_use_is_never_unloaded_for_its_inner_model(weights) -> None:
    registry = _registry(weights, mvdream=600, inflate=300, procedural=300)
    cache = ModelCache(registry, "cpu", budget_mb=800)
    _generate_mvdream(cache)  # 600 + 300 > 800, but mvdream is held: both stay
    assert CountingMVDream.unloads == 0 and cache.loaded() == ["mvdream", "inflate"]
    cache.acquire("procedural")  # once the job is over, mvdream is idle and least recent
    assert cache.loaded() == ["inflate", "procedural"] and CountingMVDream.unloads == 1
