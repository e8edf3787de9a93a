"""Cut-out images -> the centred, white-backed squares the Hunyuan3D-2 conditioner expects.

The subject is cut out before this (the template's one cut-out path, the ``background``
parameter): the alpha channel *is* the subject mask, and with ``background="none"`` the image
is used as sent (an opaque image is then framed whole). What stays here is Hunyuan's own framing,
as upstream's ``ImageProcessorV2`` does it: crop to the alpha's bounding box, scale it to
``1 - border_ratio`` of a square canvas (the larger of the image's sides), composite over white
and resize to ``size``. Upstream resizes with OpenCV (area, then bicubic); we use Pillow's box and
bicubic filters, which agree to within a few grey levels, so parity tests start from the
conditioner's input tensor rather than from the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from backend.models.base import ImagePixels
from backend.models.hunyuan3d.config import VIEW_INDEX, ImageProcessorConfig
from shared_protocol.errors import ErrorCode, ProtocolError

# alpha at or below this is background (a fully transparent input is rejected).
ALPHA_EMPTY = 0


def recenter(rgba: np.ndarray, border_ratio: float, field: str = "images") -> np.ndarray:
    """rgba (h, w, 4) uint8 -> (s, s, 3) uint8 on white, s = max(h, w), subject centred."""
    mask = rgba[..., 3]
    rows, cols = np.nonzero(mask > ALPHA_EMPTY)
    if len(rows) == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "the image is fully transparent: there is no subject to reconstruct",
            field=field,
            hint="Send an image whose subject is opaque (alpha > 0) on a transparent background.",
        )
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    h, w = bottom - top, right - left
    if h == 0 or w == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "the subject is a single line of pixels",
            field=field,
            hint="Send an image with a visible subject.",
        )
    size = max(rgba.shape[:2])
    desired = int(size * (1 - border_ratio))
    scale = desired / max(h, w)
    h2, w2 = int(h * scale), int(w * scale)
    crop = Image.fromarray(np.ascontiguousarray(rgba[top:bottom, left:right]), "RGBA")
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    y0, x0 = (size - h2) // 2, (size - w2) // 2
    canvas[y0 : y0 + h2, x0 : x0 + w2] = np.asarray(crop.resize((w2, h2), Image.Resampling.BOX))
    alpha = canvas[..., 3:].astype(np.float32) / 255
    rgb = canvas[..., :3] * alpha + 255 * (1 - alpha)
    return rgb.clip(0, 255).astype(np.uint8)


def to_condition_tensor(
    rgba: np.ndarray, size: int, border_ratio: float, field: str = "images"
) -> torch.Tensor:
    """rgba (h, w, 4) uint8 -> (1, 3, size, size) float32 in [-1, 1]."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            f"expected an (h, w, 4) uint8 RGBA image, got {rgba.shape} {rgba.dtype}",
            field=field,
        )
    square = recenter(rgba, border_ratio, field)
    resized = np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BICUBIC))
    tensor = torch.from_numpy(resized.astype(np.float32) / 255 * 2 - 1)
    return tensor.permute(2, 0, 1)[None]


def condition_images(
    images: Sequence[ImagePixels], processor: ImageProcessorConfig, multi_view: bool
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The request's images -> the conditioner's input and the views' slots.

    Single view: (1, 3, s, s), slots (0,). Multi-view: the views in slot order (front, left,
    back, right), (1, v, 3, s, s), and their slots. Errors name the image (``images[i]``)."""
    indexed = sorted(enumerate(images), key=lambda item: VIEW_INDEX.get(item[1].view, 0))
    tensors = [
        to_condition_tensor(image.pixels, processor.size, processor.border_ratio, f"images[{i}]")
        for i, image in indexed
    ]
    views = tuple(VIEW_INDEX.get(image.view, 0) for _, image in indexed)
    if not multi_view:
        return tensors[0], views[:1]
    return torch.stack([t[0] for t in tensors])[None], views
