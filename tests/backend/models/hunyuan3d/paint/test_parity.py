"""Multi-view sampling (:func:`paint.multiview.generate_views`) against hy3dgen 2.0.2's
``HunyuanPaintPipeline.__call__`` on identical tiny random weights.

tests/data/hunyuan/paint_views.npz: the VAE's random weights (``vae:<key>``; the UNet's are
those of paint_unet.npz) and per case (``guided``: three views, guidance 2.0, seed 0 as hy3dgen
runs it; ``unguided``: two views, guidance 1.0, seed 5) the inputs as 8-bit pixels and what
hy3dgen produced from them: the final ``latents`` (before the VAE's scaling is undone) and the
decoded ``images`` (n, 64, 64, 3) in [0, 1].
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from backend.cancellation import CancelToken
from backend.models.hunyuan3d.paint.loading import PaintModels, load_paint_models
from backend.models.hunyuan3d.paint.multiview import generate_views
from backend.models.testing.hunyuan_paint import TINY_UNET_CONFIG, write_tiny_paint_model

DATA = Path(__file__).resolve().parents[4] / "data" / "hunyuan"
TOLERANCE = 1e-4  # max abs difference / max abs reference


def _load(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / name) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return _load("paint_views.npz")


@pytest.fixture(scope="module")
def models(reference: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory
           ) -> PaintModels:
    """The tiny folder hy3dgen loaded, written by our writer and read by our loading code."""
    unet_data = _load("paint_unet.npz")
    assert json.loads(str(unet_data["config_json"])) == TINY_UNET_CONFIG

    def state(data: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
        return {key.removeprefix(prefix): torch.from_numpy(np.ascontiguousarray(value))
                for key, value in data.items() if key.startswith(prefix)}

    folder = write_tiny_paint_model(
        tmp_path_factory.mktemp("hunyuan3d-paint-v2-0"),
        unet_state=state(unet_data, "weight:"), vae_state=state(reference, "vae:"),
    )
    return load_paint_models(folder, "cpu", torch.float32)


def _inputs(reference: dict[str, np.ndarray], case: str) -> dict[str, Any]:
    """The pixels hy3dgen's VAE saw: the reference image as 8-bit / 255 (in float64, then
    float32), the normal and position maps as 8-bit / 255 in float32 passed through float16
    (its PIL-list conversion casts them to half)."""
    def condition(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels.astype(np.float32) / 255).half().float()

    value = {key.split(":", 1)[1]: v for key, v in reference.items() if key.startswith(f"{case}:")}
    return {
        "reference": torch.from_numpy(value["reference"] / 255.0).float(),
        "normals": condition(value["normals"]),
        "positions": condition(value["positions"]),
        "cameras": value["cameras"].tolist(),
        "steps": int(value["steps"]),
        "guidance_scale": float(value["guidance_scale"]),
        "seed": int(value["seed"]),
        "latents": torch.from_numpy(value["latents"]),
        "images": torch.from_numpy(value["images"]),
    }


def _generate(models: PaintModels, inputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
              seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Our views and the latents that reached the VAE decoder (recorded on the way)."""
    decoded: list[torch.Tensor] = []
    decode = models.vae.decode

    def recording_decode(latents: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        decoded.append(latents.clone())
        return decode(latents, *args, **kwargs)

    monkeypatch.setattr(models.vae, "decode", recording_decode)
    views = generate_views(
        models, inputs["reference"], inputs["normals"], inputs["positions"], inputs["cameras"],
        steps=inputs["steps"], guidance_scale=inputs["guidance_scale"], seed=seed,
        progress=lambda *_: None, cancel=CancelToken(),
    )
    return views, decoded[0] * models.vae.config.scaling_factor


def _relative_error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    return float((ours - expected).abs().max() / expected.abs().max())


@pytest.mark.parametrize("case", ["guided", "unguided"])
def test_views_match_hy3dgen(
    case: str, models: PaintModels, reference: dict[str, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs = _inputs(reference, case)
    views, latents = _generate(models, inputs, monkeypatch, inputs["seed"])
    assert views.shape == inputs["images"].shape
    latent_error = _relative_error(latents, inputs["latents"])
    image_error = _relative_error(views, inputs["images"])
    assert latent_error < TOLERANCE, f"latents: relative error {latent_error:.2e}"
    assert image_error < TOLERANCE, f"images: relative error {image_error:.2e}"


def test_another_seed_is_far_from_the_reference(
    models: PaintModels, reference: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison sees the random streams: another seed lands far outside the tolerance."""
    inputs = _inputs(reference, "unguided")
    views, _ = _generate(models, inputs, monkeypatch, inputs["seed"] + 1)
    assert _relative_error(views, inputs["images"]) > 100 * TOLERANCE
