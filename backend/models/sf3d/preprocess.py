"""Input image -> SF3D's conditioning tensors (the upstream ``run.py`` / ``prepare_image`` path).

Background removal and foreground framing come from the shared :mod:`backend.models.common.background`
(alpha first, as upstream); the framed RGBA is resized to ``cond_image_size`` with Pillow's
default (bicubic, alpha-premultiplied) resampling, as upstream does, and the colour is blended
over the configured grey by the alpha. The alpha itself is the mask the material estimator uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from backend.models.common import background
from backend.models.sf3d.config import SF3DConfig


@dataclass(frozen=True)
class Conditioning:
    """rgb (1, 1, S, S, 3) float32 over grey, mask (1, 1, S, S, 1), how the cut-out was made."""

    rgb: torch.Tensor
    mask: torch.Tensor
    cutout_method: str
    framed: np.ndarray  # (S, S, 4) uint8: what the network sees, for previews


def condition_image(
    pixels: np.ndarray, config: SF3DConfig, foreground_ratio: float, method: str = "auto"
) -> Conditioning:
    """(h, w, 3|4) uint8 image -> conditioning tensors; ``method`` "none" keeps it as is."""
    if method == "none":
        rgba = pixels if pixels.shape[2] == 4 else np.dstack(
            [pixels, np.full(pixels.shape[:2], 255, np.uint8)]
        )
        used = "none"
    else:
        cutout = background.remove_background(pixels, method=method)
        rgba = background.resize_foreground(cutout.rgba, foreground_ratio)
        used = cutout.method
    size = config.cond_image_size
    framed = np.asarray(Image.fromarray(np.ascontiguousarray(rgba), "RGBA").resize((size, size)))
    image = torch.from_numpy(framed.astype(np.float32) / 255.0).clamp(0, 1)
    mask = image[:, :, 3:]
    grey = torch.tensor(config.background_color, dtype=torch.float32)
    rgb = torch.lerp(grey[None, None, :], image[:, :, :3], mask)
    return Conditioning(rgb[None, None], mask[None, None], used, framed)
