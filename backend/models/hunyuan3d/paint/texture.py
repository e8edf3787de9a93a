"""The texture stage: a shape mesh + the input image -> UVs and a baked base-colour texture.

Upstream's order, with our own parts: reduce the mesh (``backend.geometry.decimate``), unwrap it
(``backend.geometry.uv``), render its normal and position maps from the six paint cameras
(:mod:`paint_bake`), delight the input image (:mod:`paint_delight`), generate the six views
(:mod:`paint_multiview`), project them back onto the UV atlas with visibility and view-angle
weights and fill the texels no camera saw. The result is handed to the geometry pipeline as a
``RawAsset`` with ``uvs`` and ``texture``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from backend.cancellation import CancelToken
from backend.geometry import decimate, uv
from backend.models.base import ProgressCallback
from backend.models.hunyuan3d import paint_bake, paint_delight, paint_multiview
from backend.models.hunyuan3d.paint_loading import PaintModels
from shared_protocol.errors import ErrorCode, ProtocolError

RECENTER_BORDER = 0.2  # upstream pads the subject's box by 20 % per side before delighting


@dataclass(frozen=True)
class PaintSettings:
    """Sizes and step counts of the texture stage (defaults: upstream's, but a 1024 atlas)."""

    max_faces: int = 40_000
    texture_size: int = 1024
    view_size: int = paint_multiview.VIEW_SIZE
    render_size: int = 1024  # views are upsampled to this before baking (upstream: 2048)
    steps: int = paint_multiview.STEPS
    guidance_scale: float = paint_multiview.GUIDANCE
    delight_steps: int = paint_delight.STEPS
    seed: int = 0


@dataclass
class PaintedMesh:
    """vertices (n, 3) float32, faces (m, 3) int64, uvs (n, 2) float32 (glTF convention),
    texture (s, s, 3) uint8 sRGB."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    texture: np.ndarray


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


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(n, h, w, c) -> (n, size, size, c), bilinear."""
    resized = F.interpolate(images.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                            align_corners=False)
    return resized.permute(0, 2, 3, 1)


def paint_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    image: np.ndarray,
    delight_pipeline: Any,
    models: PaintModels,
    settings: PaintSettings,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> PaintedMesh:
    """vertices (n, 3), faces (m, 3) in the backend frame, image (h, w, 4) uint8 RGBA."""
    device = models.device
    reduced = decimate.decimate(vertices, faces, settings.max_faces)
    cancel.raise_if_cancelled()
    mapped = uv.unwrap(reduced.vertices, reduced.faces, settings.texture_size)
    progress("texture_prepare", 1, 3)
    points = torch.from_numpy(mapped.vertices).to(device)
    triangles = torch.from_numpy(mapped.faces).to(device)
    normalised, _centre, _scale = paint_bake.normalise(points)
    cameras = paint_bake.paint_cameras(device)
    views = [paint_bake.render_view(normalised, triangles, c, settings.view_size) for c in cameras]
    progress("texture_prepare", 2, 3)
    delit = paint_delight.delight(
        delight_pipeline, recenter_rgba(image), progress=progress, cancel=cancel,
        steps=settings.delight_steps, size=settings.view_size,
    )
    progress("texture_prepare", 3, 3)
    reference = torch.from_numpy(delit).float().div(255)
    generated = paint_multiview.generate_views(
        models, reference, torch.stack([v.normal for v in views]),
        torch.stack([v.position for v in views]),
        [paint_multiview.camera_id(c.azimuth, c.elevation) for c in cameras],
        progress=progress, cancel=cancel, steps=settings.steps,
        guidance_scale=settings.guidance_scale, seed=settings.seed,
    )
    cancel.raise_if_cancelled()
    # bake at render size: depth maps and images must share one pixel grid
    upsampled = _resize(generated, settings.render_size)
    depths = [
        paint_bake.render_view(normalised, triangles, c, settings.render_size).raster.depth
        for c in cameras
    ]
    atlas = paint_bake.atlas_texels(
        normalised, triangles, torch.from_numpy(mapped.uvs).to(device), settings.texture_size
    )
    texture, seen = paint_bake.bake_views(
        atlas, list(upsampled), cameras, depths, paint_bake.VIEW_WEIGHTS
    )
    texture = paint_bake.inpaint(texture, seen)
    progress("texture_bake", 1, 1)
    pixels = (texture.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return PaintedMesh(mapped.vertices, mapped.faces, mapped.uvs, pixels)
