"""Input images -> the centred, white-backed squares the Hunyuan3D-2 conditioner expects.

Like upstream's ``ImageProcessorV2``: crop to the alpha mask's bounding box, scale it to
``1 - border_ratio`` of a square canvas (the larger of the image's sides), composite over white
and resize to ``size``. Upstream resizes with OpenCV (area, then bicubic); we use Pillow's box and
bicubic filters, which agree to within a few grey levels, so parity tests start from the
conditioner's input tensor rather than from the PNG.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from shared_protocol.errors import ErrorCode, ProtocolError

# alpha at or below this is background (a fully transparent input is rejected).
ALPHA_EMPTY = 0


def recenter(rgba: np.ndarray, border_ratio: float) -> np.ndarray:
    """rgba (h, w, 4) uint8 -> (s, s, 3) uint8 on white, s = max(h, w), subject centred."""
    mask = rgba[..., 3]
    rows, cols = np.nonzero(mask > ALPHA_EMPTY)
    if len(rows) == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "the image is fully transparent: there is no subject to reconstruct",
            field="images",
            hint="Send an image whose subject is opaque (alpha > 0) on a transparent background.",
        )
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    h, w = bottom - top, right - left
    if h == 0 or w == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "the subject is a single line of pixels",
            field="images",
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


def to_condition_tensor(rgba: np.ndarray, size: int, border_ratio: float) -> torch.Tensor:
    """rgba (h, w, 4) uint8 -> (1, 3, size, size) float32 in [-1, 1]."""
    if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            f"expected an (h, w, 4) uint8 RGBA image, got {rgba.shape} {rgba.dtype}",
            field="images",
        )
    square = recenter(rgba, border_ratio)
    resized = np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BICUBIC))
    tensor = torch.from_numpy(resized.astype(np.float32) / 255 * 2 - 1)
    return tensor.permute(2, 0, 1)[None]
