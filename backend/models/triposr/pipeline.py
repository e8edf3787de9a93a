"""One TripoSR run, step by step: a cut-out image -> a coloured mesh in the backend frame.

1. condition: upstream run.py's framing of the cut-out (``resize_foreground`` to the
   foreground ratio, flattened onto grey); the cut-out itself is made before (the adapter
   template's shared one), so an image arrives here with its subject mask as alpha;
2. encode: image -> triplanes (autocast in the half dtype on CUDA);
3. field: density on the marching-cubes grid, chunk by chunk;
4. surface: marching cubes, turned into the backend frame;
5. colour: the colour head wrapped as a numpy point field, and the vertex colours.

``on_event(stage, step, total, message, preview)`` is called at every stage boundary and after
every field chunk: the caller reports progress and raises there to cancel. The step functions
are public so the benchmark can time them one by one. Nothing here knows about adapters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as nnf

from backend.models.base import ProgressCallback
from backend.models.common.background import composite_on_grey, resize_foreground
from backend.models.triposr.chunking import DEFAULT_CHUNK, fit_chunk
from backend.models.triposr.half_weights import half_weights
from backend.models.triposr.isosurface import (
    DEFAULT_THRESHOLD,
    from_backend_frame,
    marching_cubes,
    to_backend_frame,
    unit_grid_points,
)
from backend.models.triposr.network import TripoSRNet
from backend.models.triposr.triplane import decode_unit_points, density_into

# Points per decoder call used when the caller asks for no chunking on a large grid.
MAX_UNCHUNKED = 1 << 22
PREVIEW_SIZE = 128  # largest side of the conditioning preview sent with the first event

PointField = Callable[[np.ndarray], np.ndarray]


def _ignore(stage: str, step: int, total: int, message: str = "",
            preview: np.ndarray | None = None) -> None:
    return None


@dataclass(frozen=True)
class TripoSRSettings:
    """One run's settings; the defaults are upstream run.py's."""

    foreground_ratio: float = 0.85
    # False: the image is used exactly as sent (upstream's --no-remove-bg: the caller has
    # already centred the subject on grey).
    frame_subject: bool = True
    mc_resolution: int = 256
    # Field points per decoder call (0: as many as fit). Not upstream's 8192: the chunk does not
    # change the field, and large ones are far faster on a GPU (chunking.py); cut to fit memory.
    chunk_size: int = DEFAULT_CHUNK
    density_threshold: float = DEFAULT_THRESHOLD


@dataclass
class TripoSROutput:
    """vertices (n, 3) float32 and faces (m, 3) int64 in the backend frame, outward wound;
    vertex_colors (n, 3) float32 sRGB in [0, 1]; color_field the same colour at any points;
    condition (s, s, 3) uint8, the image the network saw."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray
    color_field: PointField
    condition: np.ndarray


class TripoSRPipeline:
    """A loaded network and the dtype its encoder runs in on CUDA."""

    def __init__(self, model: TripoSRNet, dtype: torch.dtype = torch.float32) -> None:
        self.model = model
        self.dtype = dtype

    def __call__(
        self, rgba: np.ndarray, settings: TripoSRSettings, on_event: ProgressCallback = _ignore
    ) -> TripoSROutput:
        """rgba (h, w, 4) uint8 whose alpha is the subject mask -> the mesh and its colour."""
        model = self.model
        on_event("preprocess", 0, 1, "framing the subject")
        image = condition_image(rgba, settings.foreground_ratio, settings.frame_subject)
        on_event("preprocess", 1, 1, f"{image.shape[1]}x{image.shape[0]} on grey",
                 preview=_preview(image))

        on_event("encode", 0, 1, "image -> triplanes")
        planes = encode(model, image, self.dtype)
        on_event("encode", 1, 1, "triplanes ready")

        resolution = settings.mc_resolution
        chunk = fit_chunk(settings.chunk_size, model.config, planes.device)

        def between_chunks(done: int, total: int) -> None:
            on_event("field", done, total, f"density at {done}/{total} grid points")

        density = density_grid(model, planes, resolution, chunk, between_chunks)

        on_event("surface", 0, 1, f"marching cubes at {resolution}^3")
        vertices, faces = surface(density, settings.density_threshold, model.config.radius)
        color_field = make_color_field(model, planes, chunk)
        vertex_colors = color_field(vertices)
        on_event("surface", 1, 1, f"{len(faces)} triangles")
        return TripoSROutput(vertices, faces, vertex_colors, color_field, image)


# --- the steps ------------------------------------------------------------------------------


def condition_image(
    rgba: np.ndarray, foreground_ratio: float = 0.85, frame_subject: bool = True
) -> np.ndarray:
    """(h, w, 4) uint8 cut-out (alpha = subject) -> (s, s, 3) uint8 conditioning image.

    Framed to ``foreground_ratio`` of a square and flattened onto grey, as upstream's run.py;
    ``frame_subject`` False keeps the colour channels as they are.
    """
    if not frame_subject:
        return np.ascontiguousarray(rgba[:, :, :3])
    return composite_on_grey(resize_foreground(rgba, foreground_ratio))


def prepare_condition(image: np.ndarray, size: int) -> torch.Tensor:
    """Upstream's image preprocessing: an RGB uint8 or float image -> (1, 3, size, size) float.

    image : (h, w, 3) uint8 (scaled by 1/255) or float in [0, 1]
    Resized with antialiased bilinear interpolation, as upstream's ImagePreprocessor does.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) image, got {image.shape}")
    pixels = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    tensor = tensor.permute(2, 0, 1).unsqueeze(0)
    return nnf.interpolate(
        tensor, (size, size), mode="bilinear", align_corners=False, antialias=True
    )


@contextlib.contextmanager
def autocast_for(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Mixed precision on CUDA for half dtypes; plain float32 elsewhere."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype):
            yield
    else:
        yield


@torch.no_grad()
def encode(model: TripoSRNet, image: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Conditioning image (s, s, 3) uint8 -> triplanes (3, c, h, w) float32, model's device."""
    device = next(model.parameters()).device
    condition = prepare_condition(image, model.config.cond_image_size).to(device)
    with autocast_for(device, dtype):
        # Under autocast (CUDA, half dtype) the matmul weights are already in its dtype, so it
        # launches no weight casts; same numbers (half_weights.py).
        autocast = torch.is_autocast_enabled("cuda")
        with half_weights(model, dtype) if autocast else contextlib.nullcontext():
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
    # The grid is made in grid_sample's [-1, 1] once, and each chunk's activated density is
    # written straight into ``out``: per chunk only the sampling, the decoder, one add and one
    # in-place activation run (what dominates at upstream's 8k-point chunks is launches).
    unit = unit_grid_points(resolution, model.config.radius, device=planes.device)
    total = unit.shape[0]
    step = chunk_size if chunk_size > 0 else min(total, MAX_UNCHUNKED)
    out = torch.empty(total, dtype=torch.float32, device=planes.device)
    config, decoder = model.config, model.decoder
    for start in range(0, total, step):
        raw = decode_unit_points(config, decoder, planes, unit[start : start + step])
        density_into(config, raw, out[start : start + step])
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


def make_color_field(model: TripoSRNet, planes: torch.Tensor, chunk_size: int) -> PointField:
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


def _preview(image: np.ndarray) -> np.ndarray:
    step = max(1, image.shape[0] // PREVIEW_SIZE)
    return np.ascontiguousarray(image[::step, ::step])
