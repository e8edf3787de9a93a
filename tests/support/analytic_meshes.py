"""Meshes with known answers for the geometry tests and benchmark: marching cubes of analytic
fields (a sphere, a blobby union of spheres) with an analytic colour, so every figure a test
checks (surface distance, baked colour error) has ground truth.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import marching_cubes


def analytic_color(points: np.ndarray) -> np.ndarray:
    """A smooth sRGB colour in [0, 1] for points (k, 3) -> (k, 3) float32; varies over ~0.3."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack(
        [
            0.5 + 0.4 * np.sin(3.0 * p[:, 0] + 1.0),
            0.5 + 0.4 * np.sin(2.5 * p[:, 1] + 2.0 * p[:, 2]),
            0.5 + 0.4 * np.cos(2.0 * p[:, 2] - 1.5 * p[:, 0]),
        ],
        axis=1,
    ).astype(np.float32)


BLOB_CENTRES = np.array(
    [[0.0, 0.0, 0.0], [0.45, 0.2, 0.0], [-0.35, 0.3, 0.2], [0.1, -0.4, 0.25], [0.0, 0.35, -0.4]]
)
BLOB_RADII = np.array([0.5, 0.32, 0.3, 0.28, 0.25])


def blob_field(points: np.ndarray) -> np.ndarray:
    """Smooth union of spheres: negative inside. points (..., 3) -> (...)."""
    distances = np.stack(
        [
            np.linalg.norm(points - c, axis=-1) - r
            for c, r in zip(BLOB_CENTRES, BLOB_RADII, strict=True)
        ]
    )
    k = 0.08  # smooth-min blend radius
    return -k * np.log(np.sum(np.exp(-distances / k), axis=0))


def sphere_field(points: np.ndarray, radius: float = 0.6) -> np.ndarray:
    """Signed distance of a sphere at the origin: points (..., 3) -> (...)."""
    return np.linalg.norm(points, axis=-1) - radius


def marching_cubes_mesh(
    field, resolution: int, extent: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Zero level set of ``field`` on a resolution^3 grid over [-extent, extent]^3.

    Returns vertices (n, 3) float32 and faces (m, 3) int64, wound counter-clockwise outside.
    """
    axis = np.linspace(-extent, extent, resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)
    volume = field(grid).astype(np.float32)
    vertices, faces, _, _ = marching_cubes(volume, 0.0, spacing=(axis[1] - axis[0],) * 3)
    vertices = vertices - extent
    # skimage winds faces counter-clockwise seen from the high-value side (outside, here).
    return vertices.astype(np.float32), faces.astype(np.int64)


def subdivided(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One 1-to-4 midpoint subdivision: four times the faces, the same closed surface (a large
    model-like mesh without a fine marching-cubes grid)."""
    corners = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edges, edge_of = np.unique(np.sort(corners, axis=1), axis=0, return_inverse=True)
    mid = len(vertices) + edge_of.reshape(-1, 3)  # midpoints of edges (a, b), (b, c), (c, a)
    a, b, c = faces.T
    ab, bc, ca = mid.T
    new_faces = np.stack(
        [np.stack(t, 1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))]
    ).reshape(-1, 3)
    midpoints = (vertices[edges[:, 0]] + vertices[edges[:, 1]]) / 2
    return np.concatenate([vertices, midpoints.astype(vertices.dtype)]), new_faces
