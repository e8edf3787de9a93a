"""The texture stage: a shape mesh + the input image -> painted views for the geometry pipeline.

Upstream's order without its own bake: render the mesh's normal and position maps from the six
paint cameras (:mod:`.render`), delight the input image (:mod:`.delight`), generate the six
views (:mod:`.multiview`), and hand them over with their cameras and view weights as
``PaintedViews``. The mesh itself is not reduced, unwrapped or baked here: the geometry
pipeline decimates it to the request's target, unwraps it and bakes the views once
(``backend.geometry.views``: depth test, view-angle weights, fill of unseen texels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import PaintedViews
from backend.models.base import ProgressCallback
from backend.models.hunyuan3d.paint import delight, multiview, render
from backend.models.hunyuan3d.paint.loading import PaintModels
from shared_protocol.errors import ErrorCode, ProtocolError

RECENTER_BORDER = 0.2  # upstream pads the subject's box by 20 % per side before delighting


@dataclass(frozen=True)
class PaintSettings:
    """Sizes and step counts of the texture stage (defaults: upstream's)."""

    view_size: int = multiview.VIEW_SIZE
    steps: int = multiview.STEPS
    guidance_scale: float = multiview.GUIDANCE
    delight_steps: int = delight.STEPS
    seed: int = 0


def recenter_rgba(image: np.ndarray, border: float = RECENTER_BORDER) -> np.ndarray:
    """(h, w, 4) uint8 -> a transparent square with the subject's box padded by ``border``."""
    rows, cols = np.nonzero(image[..., 3] > 0)
    if len(rows) == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, "the image is fully transparent: nothing to paint from",
            field="body.images",
        )
    crop = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape[:2]
    side = max(h + 2 * int(h * border), w + 2 * int(w * border))
    canvas = np.zeros((side, side, 4), np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = crop
    return canvas


def paint_views(
    vertices: np.ndarray,
    faces: np.ndarray,
    image: np.ndarray,
    delight_pipeline: Any,
    models: PaintModels,
    settings: PaintSettings,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> PaintedViews:
    """vertices (n, 3), faces (m, 3) in the backend frame, image (h, w, 4) uint8 RGBA -> the
    six generated views (alpha: where the mesh covers them) with cameras of the same frame."""
    size = settings.view_size
    cameras = render.paint_cameras(vertices, size)
    progress("texture_prepare", 1, 3)
    normals, positions, masks = render.render_conditions(vertices, faces, cameras, size)
    cancel.raise_if_cancelled()
    progress("texture_prepare", 2, 3)
    delit = delight.delight(
        delight_pipeline, recenter_rgba(image), progress=progress, cancel=cancel,
        steps=settings.delight_steps, size=size,
    )
    progress("texture_prepare", 3, 3)
    generated = multiview.generate_views(
        models, torch.from_numpy(delit).float().div(255), torch.from_numpy(normals),
        torch.from_numpy(positions),
        [multiview.camera_id(a, e)
         for a, e in zip(render.CAMERA_AZIMUTHS, render.CAMERA_ELEVATIONS, strict=True)],
        progress=progress, cancel=cancel, steps=settings.steps,
        guidance_scale=settings.guidance_scale, seed=settings.seed,
    )  # fmt: skip
    cancel.raise_if_cancelled()
    colour = (generated.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    # The mesh's own coverage as alpha: the generated background never bleeds into the bake.
    alpha = np.where(masks, 255, 0).astype(np.uint8)[..., None]
    return PaintedViews(np.concatenate([colour, alpha], axis=-1), cameras,
                        np.asarray(render.VIEW_WEIGHTS))  # fmt: skip
