"""Hunyuan3D-Paint's delight model: removes baked-in lighting and shadows from the input view.

The model (hub subfolder ``hunyuan3d-delight-v2-0`` of ``tencent/Hunyuan3D-2``) is a diffusers
``StableDiffusionInstructPix2PixPipeline`` folder; upstream runs it with an empty prompt, image
guidance 1.5, text guidance 1.0, 50 Euler-ancestral steps at 512 px and seed 42, then matches
the result's per-channel mean and spread to the input's (so the delit view keeps the input's
overall colour) and composites it over white with the input's eroded alpha. We do the same, with
progress per step and cancel between steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback
from backend.models.common.device_errors import typed_device_errors
from backend.models.common.pipeline_hooks import report_steps
from backend.models.common.torch_dtypes import torch_dtype
from shared_protocol.errors import ErrorCode, ProtocolError

SUBFOLDER = "hunyuan3d-delight-v2-0"
IMAGE_GUIDANCE = 1.5
TEXT_GUIDANCE = 1.0
STEPS = 50
SIZE = 512
SEED = 42
COLOUR_MATCH_SCALE = 0.95  # upstream keeps 5% of the delit image's own mean


def load_delight(folder: Path, device: str, dtype: str = "float32") -> Any:
    """The delight pipeline from a local diffusers folder (no network, no safety checker)."""
    if not (folder / "model_index.json").is_file():
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{folder} is not the delight model's diffusers folder (no model_index.json)",
            hint="run `dreamcad-backend download <model id>`",
        )
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    with typed_device_errors("hunyuan3d-delight"):
        pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            str(folder), dtype=torch_dtype(dtype), safety_checker=None,
            requires_safety_checker=False, local_files_only=True,
        )
        pipeline.scheduler = EulerAncestralDiscreteScheduler.from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline.to(device)


def erode_alpha(alpha: np.ndarray) -> np.ndarray:
    """3x3 erosion of a (h, w) uint8 alpha (a minimum filter; cv2.erode's default border)."""
    padded = np.pad(alpha, 1, mode="edge")
    h, w = alpha.shape
    windows = [padded[r : r + h, c : c + w] for r in range(3) for c in range(3)]
    return np.minimum.reduce(windows)


def prepare(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w, 3|4) uint8 -> the model's (size, size, 3) uint8 input and (size, size) alpha in
    [0, 1]; transparent pixels become white."""
    from PIL import Image

    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            f"delight needs an (h, w, 3|4) uint8 image, got {image.shape} {image.dtype}",
        )
    mode = "RGBA" if image.shape[2] == 4 else "RGB"
    # upstream resizes with PIL's default filter (bicubic)
    resized = np.asarray(Image.fromarray(image, mode).resize((size, size), Image.BICUBIC)).copy()
    if resized.shape[2] == 3:
        return resized, np.ones((size, size), np.float64)
    alpha = erode_alpha(resized[..., 3])
    resized[alpha == 0, :3] = 255
    return resized[..., :3], alpha / 255.0


def match_colours(source: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Shift/scale ``source``'s channels (h, w, 3) in [0, 1] towards ``target``'s statistics
    inside ``alpha`` > 0.5; keep ``source`` if that moves it further from ``target``."""
    inside = alpha > 0.5
    if inside.sum() < 2:
        return source
    src, tgt = source[inside], target[inside]
    # torch.std is the unbiased estimate; use ddof=1 to match upstream's numbers
    scale = tgt.std(0, ddof=1) / np.maximum(src.std(0, ddof=1), 1e-12)
    corrected = np.clip(
        (source - COLOUR_MATCH_SCALE * src.mean(0)) * scale + COLOUR_MATCH_SCALE * tgt.mean(0),
        0, 1,
    )
    before = np.mean((source - target) ** 2)
    after = np.mean((corrected - target) ** 2)
    return source if before < after else corrected


def delight(
    pipeline: Any,
    image: np.ndarray,
    *,
    progress: ProgressCallback,
    cancel: CancelToken,
    stage: str = "delight",
    steps: int = STEPS,
    size: int = SIZE,
    seed: int = SEED,
) -> np.ndarray:
    """Remove lighting from ``image`` (h, w, 3|4) uint8 -> (size, size, 3) uint8 on white."""
    from PIL import Image

    rgb, alpha = prepare(image, size)
    target = rgb / 255.0
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with typed_device_errors("hunyuan3d-delight"), report_steps(pipeline, stage, progress, cancel):
        out = pipeline(
            prompt="", image=Image.fromarray(rgb), generator=generator, height=size, width=size,
            num_inference_steps=steps, image_guidance_scale=IMAGE_GUIDANCE,
            guidance_scale=TEXT_GUIDANCE, output_type="np",
        ).images[0]
    # upstream quantises the output to 8 bits before matching colours
    delit = np.clip(np.rint(np.asarray(out, np.float64) * 255), 0, 255) / 255.0
    corrected = match_colours(delit, target, alpha)
    composite = corrected * alpha[..., None] + (1 - alpha[..., None])
    return (composite * 255).astype(np.uint8)

