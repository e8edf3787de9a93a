"""Hunyuan3D-Paint's camera set and the condition maps its multi-view model is conditioned on.

The paint model sees the mesh from six orthographic cameras (front, left, back, right, top,
bottom: azimuth/elevation below, upstream's set and view weights) after the mesh is centred on
its bounding box and scaled so its bounding sphere has diameter 1.15; each view spans 1.2 of
those units. :func:`paint_cameras` folds that normalisation into the cameras, so they are
cameras of the mesh's own frame (``backend.geometry.raw_asset.PaintedViews``) and the painted
views go to the geometry pipeline with the mesh untouched. :func:`render_conditions` draws the
normal maps (world-space vertex normals, as upstream) and position maps (normalised position +
0.5) with the geometry's rasteriser, background 1 as upstream.

Frames: the backend's (+Y up, the subject facing +Z). Azimuth 0 looks at the front from +Z,
azimuth 90 from +X (the subject's left), elevation 90 from above. Images are (h, w, c), row 0 at
the top.
"""

from __future__ import annotations

import math

import numpy as np

from backend.geometry import tangents, views
from backend.geometry.raw_asset import orthographic_camera

CAMERA_AZIMUTHS = (0.0, 90.0, 180.0, 270.0, 0.0, 180.0)
CAMERA_ELEVATIONS = (0.0, 0.0, 0.0, 0.0, 90.0, -90.0)
VIEW_WEIGHTS = (1.0, 0.1, 0.5, 0.1, 0.05, 0.05)
ORTHO_SCALE = 1.2  # a view spans [-0.6, 0.6] of the normalised mesh in both directions
MESH_DIAMETER = 1.15


def orbit_rotation(azimuth: float, elevation: float) -> np.ndarray:
    """(3, 3) rows: the view's right, up and the direction towards the camera (world)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    backward = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    up_hint = np.array([0.0, 1.0, 0.0])
    if abs(math.cos(e)) < 1e-6:  # looking straight down or up: keep the front at the bottom
        up_hint = np.array([0.0, 0.0, -math.copysign(1.0, math.sin(e))])
    right = np.cross(up_hint, backward)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(backward, right), backward])


def normalisation(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre (3,), scale): (vertices - centre) * scale is upstream's normalised mesh."""
    vertices = np.asarray(vertices, dtype=np.float64)
    centre = (vertices.max(axis=0) + vertices.min(axis=0)) / 2
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    return centre, MESH_DIAMETER / (2 * max(radius, 1e-12))


def paint_cameras(vertices: np.ndarray, size: int) -> np.ndarray:
    """The six paint cameras for ``size`` px views of ``vertices`` (n, 3) -> (6, 3, 4)."""
    centre, scale = normalisation(vertices)
    return np.stack([
        orthographic_camera(orbit_rotation(a, e), centre, size * scale / ORTHO_SCALE,
                            (size / 2, size / 2))
        for a, e in zip(CAMERA_AZIMUTHS, CAMERA_ELEVATIONS, strict=True)
    ])  # fmt: skip


def render_conditions(
    vertices: np.ndarray, faces: np.ndarray, cameras: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal and position maps (v, size, size, 3) float32 in [0, 1] (background 1) and the
    coverage masks (v, size, size) bool of ``cameras`` (v, 3, 4)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    centre, scale = normalisation(vertices)
    attributes = np.hstack([
        (tangents.vertex_normals(vertices, faces) + 1) / 2,
        np.clip((vertices - centre) * scale + 0.5, 0, 1),
    ]).astype(np.float32)  # fmt: skip
    maps = np.ones((len(cameras), size, size, 6), dtype=np.float32)
    masks = np.zeros((len(cameras), size, size), dtype=bool)
    for index, camera in enumerate(cameras):
        face_id, bary, _ = views.rasterize_view(camera, vertices, faces, size, size)
        rows, cols = np.nonzero(face_id >= 0)
        corners = attributes[np.asarray(faces)[face_id[rows, cols]]]  # (k, 3, 6)
        maps[index, rows, cols] = np.einsum("kj,kjc->kc", bary[rows, cols], corners)
        masks[index, rows, cols] = True
    normals = maps[..., :3]
    # interpolated unit normals are shorter than 1: renormalise, as upstream does
    unit = normals * 2 - 1
    unit /= np.maximum(np.linalg.norm(unit, axis=-1, keepdims=True), 1e-12)
    normals = np.where(masks[..., None], (unit + 1) / 2, 1.0).astype(np.float32)
    return normals, np.ascontiguousarray(maps[..., 3:]), masks
