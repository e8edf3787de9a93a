"""The steps from triplanes to geometry: chunked field queries, mesh extraction, frames.

Model space (the network's): +Z up, the conditioning camera on +X looking at the origin, image
right = +Y. The backend frame (glTF): +Y up, subject facing +Z, right = +X. So
backend (x, y, z) = model (y, z, x): a rotation (cyclic axis permutation), no mirroring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from backend.models.sf3d.isosurface import MarchingTetrahedra
from backend.models.sf3d.network import SF3DNetwork

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
