"""A cut-out image -> SF3D's conditioning tensors (upstream's ``run.py`` / ``prepare_image``).

The subject is cut out before this (the adapter template's shared cut-out: its alpha is the
subject mask). Here only SF3D's own framing happens: ``resize_foreground`` to the foreground
ratio (upstream's), a resize to ``cond_image_size`` with Pillow's default (bicubic,
alpha-premultiplied) resampling, as upstream does, and the colour blended over the configured
grey by the alpha. The alpha itself is the mask the material estimator uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from backend.models.common.background import resize_foreground
from backend.models.sf3d.config import SF3DConfig


@dataclass(frozen=True)
class Conditioning:
    """rgb (1, 1, S, S, 3) float32 over grey, mask (1, 1, S, S, 1), and what the network sees."""

    rgb: torch.Tensor
    mask: torch.Tensor
    framed: np.ndarray  # (S, S, 4) uint8, for previews


def condition_image(
    rgba: np.ndarray, config: SF3DConfig, foreground_ratio: float, frame_subject: bool = True
) -> Conditioning:
    """(h, w, 3|4) uint8 cut-out (alpha = subject) -> conditioning tensors.

    ``frame_subject`` False keeps the image's own framing (the ``background`` "none" path); an
    image without alpha is then taken as all subject.
    """
    if rgba.shape[2] == 3:
        rgba = np.dstack([rgba, np.full(rgba.shape[:2], 255, np.uint8)])
    if frame_subject:
        rgba = resize_foreground(rgba, foreground_ratio)
    size = config.cond_image_size
    framed = np.asarray(Image.fromarray(np.ascontiguousarray(rgba), "RGBA").resize((size, size)))
    image = torch.from_numpy(framed.astype(np.float32) / 255.0).clamp(0, 1)
    mask = image[:, :, 3:]
    grey = torch.tensor(config.background_color, dtype=torch.float32)
    rgb = torch.lerp(grey[None, None, :], image[:, :, :3], mask)
    return Conditioning(rgb[None, None], mask[None, None], framed)
