"""Mesh extraction for TripoSR: the density grid, marching cubes, and the turn into our frame.

Upstream samples the density on a ``resolution``^3 grid spanning [-radius, radius]^3 (x, y, z
in ``ij`` index order), extracts the level set density == threshold (25 by default) with
torchmcubes, and maps vertex indices back to [-radius, radius]. We do the same without a
compiled extension: scikit-image's marching cubes on the CPU, or our torch implementation
(torch_marching_cubes.py) on the GPU where the density already is; either way triangles wind
counter-clockwise seen from outside.

TripoSR's own frame is +Z up with the input camera on +X looking back at the origin (its
renderer's azimuth 0; image right is +Y). The backend frame is +Y up with the subject facing
+Z, so (x, y, z)_tsr -> (y, z, x)_ours: a proper rotation, which keeps the winding.
"""

from __future__ import annotations

import numpy as np
import torch

from shared_protocol.errors import ErrorCode, ProtocolError

DEFAULT_THRESHOLD = 25.0

# Rows pick TripoSR axes for our x, y, z (see the module docstring).
TRIPOSR_TO_BACKEND = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)


def grid_points(resolution: int, radius: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Grid sample points (resolution^3, 3) in [-radius, radius], x slowest (``ij`` order)."""
    axis = torch.linspace(0.0, 1.0, resolution, device=device)
    # Same arithmetic as upstream (unit grid, then scaled) so the samples agree bit for bit.
    axis = axis * (2.0 * radius) - radius
    return _expand_grid(axis)


def unit_grid_points(
    resolution: int, radius: float, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """:func:`grid_points` already mapped to grid_sample's [-1, 1]: (resolution^3, 3).

    Bit-identical to ``to_unit(grid_points(...), radius)`` (the same elementwise arithmetic on
    the same values), but the mapping runs on one axis of ``resolution`` values instead of on
    every coordinate of the grid.
    """
    axis = torch.linspace(0.0, 1.0, resolution, device=device)
    axis = axis * (2.0 * radius) - radius
    return _expand_grid((axis + radius) / (2.0 * radius) * 2.0 - 1.0)


def _expand_grid(axis: torch.Tensor) -> torch.Tensor:
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1), z.reshape(-1)], dim=-1)


def marching_cubes(
    density: np.ndarray | torch.Tensor, threshold: float, radius: float, method: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Level set ``density == threshold`` of a cubic grid over [-radius, radius]^3.

    density : (r, r, r) float, indexed [x, y, z]; the object is where density > threshold
    method : "skimage" (CPU), "torch" (on the tensor's device), "auto" (torch for a CUDA
        tensor, else skimage)
    returns vertices (n, 3) float32 in TripoSR's frame and faces (m, 3) int64, outward CCW
    """
    resolution = density.shape[0]
    if density.ndim != 3 or len(set(density.shape)) != 1 or resolution < 2:
        raise ValueError(f"density must be a cubic (r, r, r) grid, got {tuple(density.shape)}")
    if method == "auto":
        method = "torch" if isinstance(density, torch.Tensor) and density.is_cuda else "skimage"
    if method not in ("skimage", "torch"):
        raise ValueError(f"unknown marching-cubes method {method!r}")
    if method == "torch":
        level = torch.as_tensor(density).float() - float(threshold)
    else:
        if isinstance(density, torch.Tensor):
            density = density.detach().cpu().numpy()
        level = np.ascontiguousarray(density, dtype=np.float32) - np.float32(threshold)
    low, high = float(level.min()), float(level.max())
    if not (high > 0.0 > low):
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"the model found no surface: density spans [{low + threshold:.3g}, "
            f"{high + threshold:.3g}], threshold {threshold}",
            hint="Check that the subject is cut out cleanly (foreground ratio, background "
            "removal), or try another image.",
        )
    box, offset = _occupied_box(level > 0.0, resolution)
    if method == "torch":
        from backend.models.triposr.torch_marching_cubes import marching_cubes_torch

        vertices_t, faces_t = marching_cubes_torch(level[box])
        vertices, faces = vertices_t.cpu().numpy(), faces_t.cpu().numpy()
    else:
        from skimage.measure import marching_cubes as skimage_marching_cubes

        vertices, faces, _, _ = skimage_marching_cubes(level[box], level=0.0)
        # scikit-image winds a positive-inside level set inward; flip to outward CCW.
        faces = faces[:, [0, 2, 1]]
    vertices = vertices.astype(np.float32) + np.asarray(offset, dtype=np.float32)
    vertices = vertices / np.float32(resolution - 1)
    vertices = vertices * np.float32(2.0 * radius) - np.float32(radius)
    return vertices, faces.astype(np.int64)


def _occupied_box(inside: np.ndarray | torch.Tensor, resolution: int) -> tuple[tuple, list[int]]:
    """Slices of the inside voxels' box grown by one, and its low corner.

    Every cell the surface crosses touches an inside voxel, so marching only this box gives
    the same mesh for a fraction of the work.
    """
    lows, highs = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        if isinstance(inside, torch.Tensor):
            occupied = torch.nonzero(inside.any(dim=others[1]).any(dim=others[0])).flatten()
            first, last = int(occupied[0]), int(occupied[-1])
        else:
            occupied = np.flatnonzero(inside.any(axis=others))
            first, last = int(occupied[0]), int(occupied[-1])
        lows.append(max(first - 1, 0))
        highs.append(min(last + 2, resolution))
    return tuple(slice(a, b) for a, b in zip(lows, highs, strict=True)), lows


def to_backend_frame(points: np.ndarray) -> np.ndarray:
    """TripoSR frame (+Z up, facing +X) -> backend frame (+Y up, facing +Z); (n, 3) -> (n, 3)."""
    return np.ascontiguousarray(points @ TRIPOSR_TO_BACKEND.T, dtype=np.float32)


def from_backend_frame(points: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_backend_frame`; (n, 3) -> (n, 3)."""
    return np.ascontiguousarray(points @ TRIPOSR_TO_BACKEND, dtype=np.float32)
