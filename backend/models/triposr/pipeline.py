"""The steps of one TripoSR generation, as functions the adapter and the benchmark share.

``condition_image`` is upstream's run.py preprocessing (cut-out, foreground framing, grey
composite); ``encode`` runs the network; ``density_grid`` samples the field on the
marching-cubes grid chunk by chunk (a callback between chunks reports progress and honours
cancellation); ``surface`` extracts the mesh in the backend frame; ``make_color_field`` wraps
the colour head as the numpy point field the geometry pipeline bakes textures from.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from backend.models.common.background import composite_on_grey, remove_background, resize_foreground
from backend.models.triposr.isosurface import (
    from_backend_frame,
    grid_points,
    marching_cubes,
    to_backend_frame,
)
from backend.models.triposr.model import TripoSRNet, autocast_for, prepare_condition

# Points per decoder call used when the caller asks for no chunking on a large grid.
MAX_UNCHUNKED = 1 << 22


def condition_image(
    pixels: np.ndarray, foreground_ratio: float = 0.85, background: str = "auto"
) -> tuple[np.ndarray, str]:
    """(h, w, 3|4) uint8 -> ((s, s, 3) uint8 conditioning image, how the cut-out was made).

    ``background`` "none" uses the image as it is (upstream's --no-remove-bg: the caller has
    already centred the subject on grey); otherwise cut out, frame and flatten onto grey.
    """
    if background == "none":
        return np.ascontiguousarray(pixels[:, :, :3]), "none"
    cutout = remove_background(pixels, method=background)
    framed = resize_foreground(cutout.rgba, foreground_ratio)
    return composite_on_grey(framed), cutout.method


@torch.no_grad()
def encode(model: TripoSRNet, image: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Conditioning image (s, s, 3) uint8 -> triplanes (3, c, h, w) float32, model's device."""
    device = next(model.parameters()).device
    condition = prepare_condition(image, model.config.cond_image_size).to(device)
    with autocast_for(device, dtype):
        planes = model(condition)
    return planes[0].float()


@torch.no_grad()
def density_grid(
    model: TripoSRNet,
    planes: torch.Tensor,
    resolution: int,
    chunk_size: int,
    between_chunks: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Activated density on the marching-cubes grid: (resolution,)*3 float32, indexed [x, y, z].

    Stays on the planes' device (a GPU marching cubes reads it there). ``between_chunks(done,
    total)`` runs after every chunk (progress, cancellation).
    """
    points = grid_points(resolution, model.config.radius, device=planes.device)
    total = points.shape[0]
    step = chunk_size if chunk_size > 0 else min(total, MAX_UNCHUNKED)
    out = torch.empty(total, dtype=torch.float32, device=planes.device)
    for start in range(0, total, step):
        block = points[start : start + step]
        out[start : start + step] = model.query(planes, block, 0, want_color=False)[
            "density_act"
        ][:, 0]
        if between_chunks is not None:
            between_chunks(min(start + step, total), total)
    return out.reshape(resolution, resolution, resolution)


def surface(
    density: torch.Tensor | np.ndarray, threshold: float, radius: float, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes in the backend frame: vertices (n, 3) float32, faces (m, 3) int64.

    ``method`` "auto" marches on the GPU when the density is there, else with scikit-image.
    """
    vertices, faces = marching_cubes(density, threshold, radius, method)
    return to_backend_frame(vertices), faces


def make_color_field(
    model: TripoSRNet, planes: torch.Tensor, chunk_size: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Points (k, 3) in the backend frame -> sRGB colour (k, 3) float32 in [0, 1]."""
    device = planes.device

    @torch.no_grad()
    def field(points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.zeros((0, 3), np.float32)
        local = torch.from_numpy(from_backend_frame(np.asarray(points, np.float32))).to(device)
        color = model.query(planes, local, chunk_size, want_color=True)["color"]
        return color.cpu().numpy().astype(np.float32)

    return field
