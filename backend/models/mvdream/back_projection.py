"""Colour a reconstructed mesh from the generated views: a back-projection colour field.

Each view's camera orbits the origin in the backend frame (+Y up, the subject facing +Z;
azimuth 0 on +Z, 90 on +X, elevation up from the horizon), so a surface point is seen by a
view at (p . right, p . up) in its image plane. The generator's field of view and framing are
not known exactly, so each view's placement (one scale, two offsets) is fitted by matching the
mesh's projected extent to the subject's cut-out box in that view. A point takes the views'
colours weighted by how squarely its surface faces each camera (normal . direction, sharpened)
and only from views whose cut-out covers it; occlusion is not modelled (concave regions can
pick up a nearer surface's colour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SHARPNESS = 4.0  # exponent on the facing term: favours the most frontal view


@dataclass(frozen=True)
class ViewPlacement:
    """Orthographic placement of one view: pixel = centre + scale * (x, -y) in its plane."""

    direction: np.ndarray  # (3,) unit vector from the origin to the camera
    right: np.ndarray  # (3,)
    up: np.ndarray  # (3,)
    scale: float
    centre_col: float
    centre_row: float
    plane_centre: np.ndarray  # (2,) mesh-extent centre in plane coordinates


def camera_axes(elevation_deg: float, azimuth_deg: float) -> tuple[np.ndarray, ...]:
    """(direction, right, up) unit vectors of an orbit camera in the backend frame."""
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    direction = np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    right = np.cross(-direction, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -direction)
    return direction, right, up / np.linalg.norm(up)


def fit_placement(
    vertices: np.ndarray, mask: np.ndarray, elevation_deg: float, azimuth_deg: float
) -> ViewPlacement:
    """Place ``vertices`` (n, 3) in the view whose cut-out is ``mask`` (h, w) bool."""
    direction, right, up = camera_axes(elevation_deg, azimuth_deg)
    plane = np.stack([vertices @ right, vertices @ up], axis=1)
    low, high = plane.min(axis=0), plane.max(axis=0)
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        rows, cols = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
    extent_px = np.array([cols.max() - cols.min() + 1, rows.max() - rows.min() + 1], float)
    extent = np.maximum(high - low, 1e-6)
    scale = float(np.mean(extent_px / extent))
    return ViewPlacement(
        direction, right, up, scale,
        centre_col=(cols.min() + cols.max()) / 2.0,
        centre_row=(rows.min() + rows.max()) / 2.0,
        plane_centre=(low + high) / 2.0,
    )


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(n, 3) area-weighted unit vertex normals of a counter-clockwise mesh."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def back_projected_field(
    vertices: np.ndarray,
    faces: np.ndarray,
    views: np.ndarray,
    masks: np.ndarray,
    elevation_deg: float,
    azimuths_deg: tuple[float, ...],
) -> Callable[[np.ndarray], np.ndarray]:
    """points (k, 3) -> (k, 3) float32 sRGB from ``views`` (n, h, w, 3) uint8 + ``masks``."""
    from scipy.spatial import cKDTree

    placements = [fit_placement(vertices, m, elevation_deg, a)
                  for m, a in zip(masks, azimuths_deg, strict=True)]
    normals = vertex_normals(np.asarray(vertices, np.float64), np.asarray(faces))
    tree = cKDTree(vertices)
    images = views.astype(np.float32) / 255.0
    height, width = views.shape[1:3]

    def colour(points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64)
        _, nearest = tree.query(points)
        normal = normals[nearest]
        total = np.zeros((len(points), 3))
        weight_sum = np.zeros(len(points))
        best = np.full(len(points), -np.inf)
        best_colour = np.zeros((len(points), 3))
        for place, image, mask in zip(placements, images, masks, strict=True):
            plane = np.stack([points @ place.right, points @ place.up], axis=1)
            offset = (plane - place.plane_centre) * place.scale
            col = np.clip(np.rint(place.centre_col + offset[:, 0]), 0, width - 1).astype(int)
            row = np.clip(np.rint(place.centre_row - offset[:, 1]), 0, height - 1).astype(int)
            facing = normal @ place.direction
            sampled = image[row, col]
            weight = np.where(mask[row, col], np.clip(facing, 0.0, None) ** SHARPNESS, 0.0)
            total += weight[:, None] * sampled
            weight_sum += weight
            better = facing > best
            best = np.where(better, facing, best)
            best_colour[better] = sampled[better]
        blended = total / np.maximum(weight_sum, 1e-12)[:, None]
        return np.where(weight_sum[:, None] > 0, blended, best_colour).astype(np.float32)

    return colour
