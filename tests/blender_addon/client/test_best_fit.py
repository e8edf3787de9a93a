"""client/best_fit.py: the one model the shelf stars for a task, by its stated rule."""

from __future__ import annotations

from shared_protocol.messages import GpuInfo, ModelInfo


def model(model_id: str, tasks: tuple[str, ...], vram_mb: int, *, present: bool = True,
          repo: str = "org/repo") -> ModelInfo:  # fmt: skip
    return ModelInfo(id=model_id, name=model_id, tasks=tasks, parameters=(), vram_mb=vram_mb,
                     license="MIT", weights_present=present, weights_repo=repo)  # fmt: skip


def gpu(free_mb: int) -> GpuInfo:
    return GpuInfo(index=0, name="GPU", memory_total_mb=80_000, memory_free_mb=free_mb)


SMALL = model("small", ("image",), 6_000)
LARGE = model("large", ("image", "multi_image"), 12_000)
HUGE = model("huge", ("image", "texture"), 24_000)
TEXT = model("text", ("text",), 8_000)
BUILTIN = model("builtin", ("image",), 0, repo="")
MODELS = (SMALL, LARGE, HUGE, TEXT, BUILTIN)


def test_the_largest_ready_model_that_fits_the_free_memory_now(addon) -> None:
    best_fit = addon.client.best_fit.best_fit
    fit = addon.client.best_fit.BestFit
    assert best_fit(MODELS, "image", [gpu(30_000)], {}) == fit("huge", False)
    assert best_fit(MODELS, "image", [gpu(20_000)], {}) == fit("large", False)  # huge too big
    assert best_fit(MODELS, "image", [gpu(7_000), gpu(13_000)], {}) == fit("large", False)
    assert best_fit(MODELS, "image", [gpu(1_000)], {}) == fit("builtin", False)
    # Loaded: its memory is already counted as used, so it fits by being there.
    assert best_fit(MODELS, "image", [gpu(1_000)], {"huge": "loaded"}) == fit("huge", False)
    assert best_fit(MODELS, "multi_image", [gpu(30_000)], {}) == fit("large", False)
    assert best_fit(MODELS, "texture", [gpu(30_000)], {}) == fit("huge", False)
    assert best_fit(MODELS, "texture", [gpu(20_000)], {}) is None
    assert best_fit(MODELS, "text", [gpu(30_000)], {}) == fit("text", False)
    assert best_fit(MODELS, "optimize", [gpu(30_000)], {}) is None


def test_ready_beats_downloadable_and_failed_or_undownloadable_models_are_left_out(addon) -> None:
    best_fit = addon.client.best_fit.best_fit
    fit = addon.client.best_fit.BestFit
    gpus = [gpu(30_000)]
    # The shelf's states win over the hello-time weights_present (a download ended since).
    missing = {"huge": "missing", "large": "missing"}
    assert best_fit(MODELS, "image", gpus, missing) == fit("small", False)
    assert best_fit(MODELS, "image", gpus, {**missing, "small": "error"}) == fit("builtin", False)
    only_missing = (model("big", ("image",), 12_000, present=False), SMALL)
    assert best_fit(only_missing, "image", gpus, {"small": "error"}) == fit("big", True)
    assert best_fit(only_missing, "image", gpus, {"small": "present"}) == fit("small", False)
    after_download = {"big": "present", "small": "present"}
    assert best_fit(only_missing, "image", gpus, after_download) == fit("big", False)
    downloading = {"big": "downloading", "small": "error"}
    assert best_fit(only_missing, "image", gpus, downloading) == fit("big", True)
    no_source = (model("local", ("image",), 1_000, present=False, repo=""),)
    assert best_fit(no_source, "image", gpus, {}) is None


def test_without_a_gpu_the_smallest_model_wins_and_ties_keep_the_backend_order(addon) -> None:
    best_fit = addon.client.best_fit.best_fit
    fit = addon.client.best_fit.BestFit
    assert best_fit(MODELS, "image", [], {}) == fit("builtin", False)
    twin = model("twin", ("image",), 6_000)
    assert best_fit((SMALL, twin), "image", [], {}) == fit("small", False)
    assert best_fit((twin, SMALL), "image", [gpu(30_000)], {}) == fit("twin", False)
    assert "largest GPU memory need" in addon.client.best_fit.RULE
