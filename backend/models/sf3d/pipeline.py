"""One SF3D run, step by step: a cut-out image -> a mesh with albedo and material fields.

1. preprocess: SF3D's framing of the cut-out (preprocess.py); the cut-out itself is made
   before (the adapter template's shared one), so the image's alpha is its subject mask;
2. encode: image + the fixed camera -> triplanes (on CUDA one captured graph, under autocast
   in the half dtype), then the per-image roughness and metallic;
3. field: density and vertex offsets on the tet grid, chunk by chunk (float32, as upstream);
4. surface: marching tetrahedra, turned into the backend frame.
Upstream's UV unwrap and texture bake are left to the geometry pipeline, which queries the
returned ``FieldSampler`` (delighted albedo, material) at texel surface points.

``on_event(stage, step, total, message, preview)`` is called at every stage boundary and after
every field chunk: the caller reports progress and raises there to cancel. Nothing here knows
about adapters.

Model space (the network's): +Z up, the conditioning camera on +X looking at the origin, image
right = +Y. The backend frame (glTF): +Y up, subject facing +Z, right = +X. So
backend (x, y, z) = model (y, z, x): a rotation (cyclic axis permutation), no mirroring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.models.base import ProgressCallback
from backend.models.common.cuda_graph import GraphedForward
from backend.models.sf3d.isosurface import MarchingTetrahedra
from backend.models.sf3d.loading import tet_grid
from backend.models.sf3d.network import SF3DNetwork, default_camera
from backend.models.sf3d.preprocess import condition_image

MODEL_TO_BACKEND = (1, 2, 0)  # backend axis i takes model axis MODEL_TO_BACKEND[i]
BACKEND_TO_MODEL = (2, 0, 1)


def model_to_backend(points: np.ndarray) -> np.ndarray:
    """(n, 3) model-space points -> backend frame."""
    return np.ascontiguousarray(points[:, MODEL_TO_BACKEND])


def backend_to_model(points: np.ndarray) -> np.ndarray:
    """(n, 3) backend-frame points -> model space."""
    return np.ascontiguousarray(points[:, BACKEND_TO_MODEL])


@torch.no_grad()
def decode_chunked(
    model: SF3DNetwork,
    points: torch.Tensor,
    planes: torch.Tensor,
    include: tuple[str, ...] | None,
    chunk: int,
    on_chunk: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Decoder heads at (N, 3) points in chunks (bounded memory); ``on_chunk(done, total)``."""
    parts: dict[str, list[torch.Tensor]] = {}
    total = points.shape[0]
    for start in range(0, total, chunk):
        out = model.decode(points[start : start + chunk], planes, include=include)
        for name, value in out.items():
            parts.setdefault(name, []).append(value)
        if on_chunk is not None:
            on_chunk(min(start + chunk, total), total)
    return {name: torch.cat(values) for name, values in parts.items()}


@torch.no_grad()
def extract_mesh(
    model: SF3DNetwork,
    planes: torch.Tensor,
    extractor: MarchingTetrahedra,
    chunk: int = 262_144,
    on_chunk: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triplanes (3, C, H, W) -> model-space vertices (n, 3) and outward faces (m, 3).

    Density minus ``isosurface_threshold`` is the level set; the predicted vertex offsets
    deform the grid, as upstream's ``triplane_to_meshes`` does.
    """
    radius = model.config.radius
    grid_points = extractor.vertices * (2 * radius) - radius  # [0, 1] grid -> bbox
    decoded = decode_chunked(
        model, grid_points, planes, ("density", "vertex_offset"), chunk, on_chunk
    )
    sdf = decoded["density"].float().reshape(-1) - model.config.isosurface_threshold
    vertices, faces = extractor(sdf, decoded["vertex_offset"].float())
    return vertices * (2 * radius) - radius, faces


@dataclass
class FieldSampler:
    """Backend-frame point fields over one asset's triplanes (what RawAsset carries).

    ``albedo`` is the delighted base colour (the decoder's ``features`` head, sRGB in [0, 1]),
    ``material`` the per-asset (roughness, metallic) broadcast to every point, ``normal`` the
    decoder's perturbed surface normal, rotated into the backend frame.
    """

    model: SF3DNetwork
    planes: torch.Tensor
    roughness: float
    metallic: float
    chunk: int = 262_144

    def _decode(self, points: np.ndarray, head: str) -> np.ndarray:
        model_points = torch.from_numpy(backend_to_model(np.asarray(points, np.float32)))
        model_points = model_points.to(self.planes.device)
        out = decode_chunked(self.model, model_points, self.planes, (head,), self.chunk)[head]
        return out.float().cpu().numpy()

    def albedo(self, points: np.ndarray) -> np.ndarray:
        """(k, 3) backend-frame points -> (k, 3) float32 sRGB albedo in [0, 1]."""
        return np.clip(self._decode(points, "features"), 0.0, 1.0).astype(np.float32)

    def material(self, points: np.ndarray) -> np.ndarray:
        """(k, 3) points -> (k, 2) float32 (roughness, metallic), constant per asset."""
        values = np.array([self.roughness, self.metallic], dtype=np.float32)
        return np.broadcast_to(values, (len(points), 2)).copy()

    def normal(self, points: np.ndarray) -> np.ndarray:
        """(k, 3) points -> (k, 3) float32 unit normals in the backend frame."""
        return model_to_backend(self._decode(points, "perturb_normal")).astype(np.float32)


# --- the pipeline ---------------------------------------------------------------------------


def _ignore(stage: str, step: int, total: int, message: str = "",
            preview: np.ndarray | None = None) -> None:
    return None


@dataclass(frozen=True)
class SF3DSettings:
    """One run's settings; the defaults are upstream run.py's."""

    foreground_ratio: float = 0.85
    # False: the image keeps its own framing (the background "none" path).
    frame_subject: bool = True
    isosurface_resolution: int = 0  # tet-grid resolution; 0: the model's own
    chunk_size: int = 262_144  # field points per decoder call


@dataclass
class SF3DOutput:
    """vertices (n, 3) float32 and faces (m, 3) int64 in the backend frame, outward wound
    (none when the model found no surface); the asset's fields and its material; framed
    (S, S, 4) uint8, the image the network saw."""

    vertices: np.ndarray
    faces: np.ndarray
    fields: FieldSampler
    roughness: float
    metallic: float
    framed: np.ndarray


class SF3DPipeline:
    """A loaded network, the dtype its encoders run in on CUDA, and its tet grids.

    ``weights_dir`` is where upstream's tet-grid files may be (see loading.tet_grid); each
    resolution's grid is built once, on the model's device.
    """

    def __init__(
        self, model: SF3DNetwork, dtype: torch.dtype = torch.float32,
        weights_dir: Path | None = None,
    ) -> None:  # fmt: skip
        self.model = model
        self.dtype = dtype
        self.weights_dir = weights_dir
        # On CUDA the encoder replays as one captured graph (same kernels, no launch gaps).
        half = dtype if dtype != torch.float32 else None
        self.encode = GraphedForward(model.scene_codes, autocast_dtype=half)
        self._extractors: dict[int, MarchingTetrahedra] = {}

    def extractor(self, resolution: int) -> MarchingTetrahedra:
        """Marching tetrahedra on the (cached) tet grid for ``resolution``."""
        if resolution not in self._extractors:
            grid = tet_grid(resolution, self.weights_dir)
            self._extractors[resolution] = MarchingTetrahedra(
                grid, resolution, self.model.bbox.device
            )
        return self._extractors[resolution]

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if device.type == "cuda" and self.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()

    @torch.no_grad()
    def __call__(
        self, rgba: np.ndarray, settings: SF3DSettings, on_event: ProgressCallback = _ignore
    ) -> SF3DOutput:
        """rgba (h, w, 4) uint8 whose alpha is the subject mask -> the mesh and its fields."""
        model = self.model
        config = model.config
        device = model.bbox.device
        on_event("preprocess", 0, 1, "framing the subject")
        cond = condition_image(rgba, config, settings.foreground_ratio, settings.frame_subject)
        on_event("preprocess", 1, 1, "framed on grey", preview=cond.framed)

        on_event("encode", 0, 2, "image -> triplanes")
        c2w, intrinsic = default_camera(config)
        rgb, mask = cond.rgb.to(device), cond.mask.to(device)
        with self._autocast(device):
            planes, _ = self.encode(
                rgb, c2w.to(device).view(1, 1, 4, 4), intrinsic.to(device).view(1, 1, 3, 3)
            )
            on_event("encode", 1, 2, "estimating roughness and metallic")
            materials = model.estimate_materials(rgb, mask)
        planes = planes[0].float()
        roughness = float(materials["roughness"].float().reshape(-1)[0])
        metallic = float(materials["metallic"].float().reshape(-1)[0])
        on_event("encode", 2, 2, f"roughness {roughness:.2f}, metallic {metallic:.2f}")

        extractor = self.extractor(settings.isosurface_resolution or config.isosurface_resolution)

        def on_chunk(done: int, total: int) -> None:
            on_event("field", done, total, f"density at {done}/{total} grid points")

        vertices, faces = extract_mesh(model, planes, extractor, settings.chunk_size, on_chunk)
        on_event("surface", 1, 1, f"{len(faces)} triangles")
        return SF3DOutput(
            vertices=model_to_backend(vertices.cpu().numpy()),
            faces=faces.cpu().numpy(),
            fields=FieldSampler(model, planes, roughness, metallic, settings.chunk_size),
            roughness=roughness,
            metallic=metallic,
            framed=cond.framed,
        )
