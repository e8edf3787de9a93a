"""dilate.py's border growth on a torch device: the same rounds, as 3x3 box sums.

Each round fills every empty texel that touches a filled one with the mean of its filled
8-neighbours, rounded as dilate.py rounds (floor of mean + 0.5), so both give the same bytes.
A round is two convolutions over the whole image, which on a GPU is cheaper than following
the front texel by texel.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def dilate_tensor(values: Any, filled: Any, rounds: int) -> tuple[Any, Any]:
    """values (h, w, c) uint8 tensor, filled (h, w) bool tensor -> new (values, filled)."""
    import torch  # optional dependency: only the torch geometry path needs it
    import torch.nn.functional as functional

    height, width, channels = values.shape
    image = values.permute(2, 0, 1)[None].double()  # (1, c, h, w): exact sums of bytes
    mask = filled[None, None].double()
    kernel = torch.ones((1, 1, 3, 3), dtype=torch.float64, device=values.device)
    for _ in range(rounds):
        count = functional.conv2d(mask, kernel, padding=1)
        fresh = (count > 0) & (mask == 0)
        if not bool(fresh.any()):
            break
        total = functional.conv2d(
            (image * mask).reshape(channels, 1, height, width), kernel, padding=1
        ).reshape(1, channels, height, width)
        mean = torch.floor(total / count.clamp(min=1) + 0.5).clamp(max=255.0)
        image = torch.where(fresh, mean, image)
        mask = torch.where(fresh, torch.ones_like(mask), mask)
    out = image[0].permute(1, 2, 0).to(torch.uint8).contiguous()
    return out, mask[0, 0] > 0


def dilate(
    values: np.ndarray, filled: np.ndarray, rounds: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """``dilate.dilate`` on ``device``: values (h, w, c) uint8, filled (h, w) bool."""
    import torch

    dev = torch.device(device)
    out, grown = dilate_tensor(
        torch.as_tensor(np.ascontiguousarray(values, dtype=np.uint8), device=dev),
        torch.as_tensor(np.ascontiguousarray(filled, dtype=bool), device=dev),
        rounds,
    )
    return out.cpu().numpy(), grown.cpu().numpy()
