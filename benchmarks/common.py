"""What several model benchmarks share: the synthetic cut-out they feed and a clock that waits
for the device, so that a stage's time includes its queued GPU work."""

from __future__ import annotations

import time

import numpy as np
import torch


def disc_image(size: int = 1024) -> np.ndarray:
    """A synthetic RGBA subject (gradient disc on transparency): (size, size, 4) uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., 0], pixels[..., 1] = (xx * 0.5 + 0.5) * 255, (yy * 0.5 + 0.5) * 255
    pixels[..., 2], pixels[..., 3] = 100, (xx**2 + yy**2 < 0.5) * 255
    return pixels


def synchronised_now(device: torch.device) -> float:
    """time.perf_counter() once ``device``'s queued work is done (CUDA: synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
