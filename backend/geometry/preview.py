"""A small software-rendered PNG thumbnail of a finished asset, for the job list.

Orthographic three-quarter view from the front-right and a little above, z-buffered with the
rasteriser of raster.py at twice the size and box-filtered down (anti-aliasing), base colour
from the baked map (or flat grey) under one key light plus ambient, transparent background.
Drawn in two parts, so the pipeline can raster the mesh before its maps are baked: :func:`draw`
(geometry and light) and :func:`finish` (colour, filter); :func:`render` is both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.geometry import raster
from backend.geometry.bounds import bounds
from backend.geometry.export import encode_png

YAW_DEG = 35.0
PITCH_DEG = 20.0
LIGHT = np.array([0.4, 0.7, 0.6]) / np.linalg.norm([0.4, 0.7, 0.6])


def view_rotation(yaw_deg: float = YAW_DEG, pitch_deg: float = PITCH_DEG) -> np.ndarray:
    """(3, 3) rotation taking world (+Y up, subject facing +Z) to view (camera looks down -Z)."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    turn = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    tilt = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    return tilt @ turn


def render(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray | None = None,
    base_color: np.ndarray | None = None,
    size: int = 256,
) -> np.ndarray:
    """RGBA (size, size, 4) uint8 image of the mesh.

    vertices (n, 3), faces (m, 3), normals (n, 3), uvs (n, 2) glTF convention with base_color
    (h, w, 3|4) uint8, or None for a grey model.
    """
    return finish(draw(vertices, faces, normals, uvs, size), base_color)


@dataclass
class Drawing:
    """The part of a preview the mesh alone decides (:func:`draw`); :func:`finish` colours it.
    covered (2s, 2s) bool, shade (k,) float64 and uv (k, 2) float64 (None without UVs) of the
    k covered pixels, size the final side."""

    covered: np.ndarray
    shade: np.ndarray
    uv: np.ndarray | None
    size: int


def draw(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray | None = None,
    size: int = 256,
) -> Drawing:
    """:func:`render`'s rasterising and lighting, which need no texture: the pipeline runs
    this beside the bake (the maps are the preview's only input the bake makes)."""
    big = size * 2
    rotation = view_rotation()
    view = vertices.astype(np.float64) @ rotation.T
    low, high = bounds(view)
    centre = (low + high) / 2
    scale = 0.9 / max(float(np.max(high[:2] - low[:2])), 1e-12)
    points = np.column_stack(
        [0.5 + (view[:, 0] - centre[0]) * scale, 0.5 - (view[:, 1] - centre[1]) * scale]
    )
    face_id, bary = raster.rasterize(points, faces, big, big, depths=-view[:, 2])
    covered = face_id >= 0
    corners = faces[face_id[covered]]
    weights = bary[covered].astype(np.float64)
    normal = np.einsum("kj,kjc->kc", weights, normals[corners].astype(np.float64)) @ rotation.T
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = rotation @ LIGHT
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0.0, 1.0)
    uv = None
    if uvs is not None:
        uv = np.einsum("kj,kjc->kc", weights, uvs[corners].astype(np.float64))
    return Drawing(covered, shade, uv, size)


def finish(drawing: Drawing, base_color: np.ndarray | None = None) -> np.ndarray:
    """:func:`render`'s image from its :func:`draw`: the base colour at each covered pixel,
    lit, box-filtered down -> RGBA (size, size, 4) uint8."""
    covered, shade, uv, size = drawing.covered, drawing.shade, drawing.uv, drawing.size
    big = size * 2
    if uv is not None and base_color is not None:
        h, w = base_color.shape[:2]
        rows = np.clip((uv[:, 1] * h).astype(np.int64), 0, h - 1)
        cols = np.clip((uv[:, 0] * w).astype(np.int64), 0, w - 1)
        albedo = base_color[rows, cols, :3].astype(np.float64) / 255.0
    else:
        albedo = np.full((len(shade), 3), 0.75)
    image = np.zeros((big, big, 4))
    image[covered, :3] = albedo * shade[:, None]
    image[covered, 3] = 1.0
    # 2x2 box filter, colour premultiplied by coverage so edges blend into transparency.
    image[..., :3] *= image[..., 3:4]
    small = image.reshape(size, 2, size, 2, 4).mean(axis=(1, 3))
    alpha = small[..., 3:4]
    small[..., :3] = np.where(alpha > 0, small[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    return np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)


def render_png(*args, **kwargs) -> bytes:
    """:func:`render` encoded as PNG bytes."""
    return encode_png(render(*args, **kwargs))
