"""Painted views as a colour source: images of the subject with their cameras, at surface points.

A model that paints its subject from known cameras (Hunyuan3D-Paint's six views, MVDream's four
with fitted cameras) hands over the images and cameras
(:class:`~backend.geometry.raw_asset.PaintedViews`) instead of baking them itself, and the bake
evaluates them at each texel's point on the high-resolution surface (:func:`colours`). A view
gives a point colour where

- the point is visible: no nearer surface in the view's depth map (rendered here from the same
  mesh with raster.py, at least ``VIEW_DEPTH_PIXELS`` across whatever the image size) by more
  than ``VIEW_DEPTH_TOLERANCE``; each depth pixel keeps its triangle's depth slopes, so the
  test is made at the point's exact position, not at the pixel centre;
- the surface faces the camera at less than ``VIEW_MAX_ANGLE_DEG``;
- the image has colour there (alpha, where the images carry one: a cut-out's background gives
  none, and sampling is alpha-weighted so a silhouette does not bleed background in);

weighted by the view's weight times cos(angle) to the power ``VIEW_FACING_EXPONENT``: the
settings of Hunyuan3D-Paint's own bake. Points no view sees take the inverse-distance mean of
the nearest seen points in 3D, so the fill follows the surface, not the atlas layout.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from backend.geometry import clean, raster, tolerances
from backend.geometry.raw_asset import PaintedViews

NO_VIEW_GREY = 0.8  # what an uncoloured mesh bakes to; used when no view sees anything


def project(camera: np.ndarray, points: np.ndarray) -> np.ndarray:
    """camera (3, 4), points (n, 3) -> (n, 3) float64: column, row, depth."""
    points = np.asarray(points, dtype=np.float64)
    # Three scaled columns, not a matmul: a BLAS call for (n, 3) @ (3, 3) spins up its thread
    # pool and is slower, more so on a busy machine.
    return (camera[:, 3] + points[:, 0, None] * camera[:, 0] + points[:, 1, None] * camera[:, 1]
            + points[:, 2, None] * camera[:, 2])  # fmt: skip


def rasterize_view(
    camera: np.ndarray, vertices: np.ndarray, faces: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nearest triangle at each pixel of a view.

    Returns face_id (height, width) int32 (-1 where empty), bary (height, width, 3) float32 and
    the vertices' screen positions (n, 3) (column, row, depth).
    """
    screen = project(camera, vertices)
    scaled = screen[:, :2] / np.array([width, height], dtype=np.float64)
    face_id, bary = raster.rasterize(scaled, faces, height, width, depths=screen[:, 2])
    return face_id, bary, screen


def depth_planes(
    camera: np.ndarray, vertices: np.ndarray, faces: np.ndarray, height: int, width: int
) -> np.ndarray:
    """(height, width, 3) float32: the nearest surface's depth at each pixel centre and its
    slopes along columns and rows (inf, 0, 0 where the view sees no surface)."""
    face_id, _, screen = rasterize_view(camera, vertices, faces, height, width)
    planes = np.empty((height, width, 3), dtype=np.float32)
    _planes(face_id, screen, np.ascontiguousarray(faces, dtype=np.int64), planes)
    return planes


@numba.njit(cache=True, nogil=True)
def _planes(face_id, screen, faces, planes):
    height, width = face_id.shape
    for row in range(height):
        for col in range(width):
            f = face_id[row, col]
            if f < 0:
                planes[row, col, 0], planes[row, col, 1], planes[row, col, 2] = np.inf, 0.0, 0.0
                continue
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            x1, y1, z1 = screen[b, 0] - screen[a, 0], screen[b, 1] - screen[a, 1], screen[b, 2]
            x2, y2, z2 = screen[c, 0] - screen[a, 0], screen[c, 1] - screen[a, 1], screen[c, 2]
            z1 -= screen[a, 2]
            z2 -= screen[a, 2]
            det = x1 * y2 - y1 * x2
            if abs(det) < 1e-12:  # the rasteriser draws no zero-area face; guard rounding
                det = 1e-12
            slope_col = (z1 * y2 - z2 * y1) / det
            slope_row = (x1 * z2 - x2 * z1) / det
            depth = screen[a, 2] + slope_col * (col + 0.5 - screen[a, 0])
            planes[row, col, 0] = depth + slope_row * (row + 0.5 - screen[a, 1])
            planes[row, col, 1] = slope_col
            planes[row, col, 2] = slope_row


@numba.njit(cache=True, nogil=True, parallel=True)
def _blend(points, normals, images, cameras, planes, scale, towards, weights, min_cos,
           exponent, tolerance, colours, total):  # fmt: skip
    count, height, width, channels = images.shape
    for i in numba.prange(points.shape[0]):  # points are independent: all cores
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        length = np.sqrt(nx * nx + ny * ny + nz * nz)
        red = green = blue = weight_sum = 0.0
        for v in range(count if length > 0.0 else 0):
            cos = (nx * towards[v, 0] + ny * towards[v, 1] + nz * towards[v, 2]) / length
            if cos <= min_cos:
                continue
            col = cameras[v, 0, 0] * px + cameras[v, 0, 1] * py + cameras[v, 0, 2] * pz
            col += cameras[v, 0, 3]
            row = cameras[v, 1, 0] * px + cameras[v, 1, 1] * py + cameras[v, 1, 2] * pz
            row += cameras[v, 1, 3]
            if not (0.0 <= col < width and 0.0 <= row < height):
                continue
            depth = cameras[v, 2, 0] * px + cameras[v, 2, 1] * py + cameras[v, 2, 2] * pz
            depth += cameras[v, 2, 3]
            dcol, drow = col * scale, row * scale  # in depth-map pixels
            c, r = int(dcol), int(drow)
            nearest = planes[v, r, c, 0]
            if nearest < np.inf:  # the pixel's surface, extended to the point's exact position
                nearest += planes[v, r, c, 1] * (dcol - c - 0.5)
                nearest += planes[v, r, c, 2] * (drow - r - 0.5)
            if depth > nearest + tolerance:
                continue
            x, y = col - 0.5, row - 0.5
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            sr = sg = sb = sa = 0.0
            for dy in range(2):
                yy = min(max(y0 + dy, 0), height - 1)
                wy = fy if dy else 1.0 - fy
                for dx in range(2):
                    xx = min(max(x0 + dx, 0), width - 1)
                    w = wy * (fx if dx else 1.0 - fx)
                    if channels == 4:
                        w *= images[v, yy, xx, 3] / 255.0
                    sr += w * images[v, yy, xx, 0]
                    sg += w * images[v, yy, xx, 1]
                    sb += w * images[v, yy, xx, 2]
                    sa += w
            if sa <= 0.0:
                continue
            weight = weights[v] * cos**exponent
            red += weight * sr / 255.0
            green += weight * sg / 255.0
            blue += weight * sb / 255.0
            weight_sum += weight * sa
        total[i] = weight_sum
        if weight_sum > 0.0:
            colours[i, 0] = red / weight_sum
            colours[i, 1] = green / weight_sum
            colours[i, 2] = blue / weight_sum


def sample(
    views: PaintedViews,
    vertices: np.ndarray,
    faces: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The views' blended colour at surface points, without filling.

    vertices (n, 3), faces (m, 3): the surface the points lie on (depth maps are rendered from
    it); points (k, 3); normals (k, 3), any length. Returns colours (k, 3) float32 sRGB in
    [0, 1] (0 where unseen) and weights (k,) float32 (0: no view sees the point).
    """
    height, width = views.images.shape[1:3]
    # Finer depth than image pixels where the images are small: a coarse depth pixel's plane
    # strays from a curved surface by more than the tolerance near silhouettes.
    scale = max(1, math.ceil(tolerances.VIEW_DEPTH_PIXELS / max(height, width)))
    depth_cameras = views.cameras * np.array([scale, scale, 1.0])[None, :, None]
    planes = np.stack(
        [depth_planes(c, vertices, faces, height * scale, width * scale) for c in depth_cameras]
    )
    backward = -views.cameras[:, 2, :3]
    towards = backward / np.maximum(np.linalg.norm(backward, axis=1, keepdims=True), 1e-30)
    colours = np.zeros((len(points), 3), dtype=np.float32)
    total = np.zeros(len(points), dtype=np.float32)
    tolerance = tolerances.VIEW_DEPTH_TOLERANCE * clean.bbox_diagonal(np.asarray(vertices))
    _blend(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(normals, dtype=np.float64),
        views.images, views.cameras, planes, scale, towards, views.weights,
        math.cos(math.radians(tolerances.VIEW_MAX_ANGLE_DEG)),
        float(tolerances.VIEW_FACING_EXPONENT), tolerance, colours, total,
    )  # fmt: skip
    return colours, total


def fill_unseen(points: np.ndarray, colours: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Colour the points (k, 3) where ``seen`` (k,) is False from the nearest seen ones:
    inverse-distance mean of ``VIEW_FILL_NEIGHBOURS``. colours (k, c) -> a new (k, c)."""
    out = np.array(colours, dtype=np.float32, copy=True)
    known = np.flatnonzero(seen)
    if len(known) == len(out):
        return out
    if len(known) == 0:
        out[:] = NO_VIEW_GREY
        return out
    known = known[:: max(1, -(-len(known) // tolerances.VIEW_FILL_TREE_POINTS))]
    missing = np.flatnonzero(~np.asarray(seen))
    neighbours = min(tolerances.VIEW_FILL_NEIGHBOURS, len(known))
    from scipy.spatial import cKDTree  # here: only painted views need it (~0.1 s to import)

    distance, index = cKDTree(points[known]).query(points[missing], k=neighbours, workers=-1)
    distance, index = distance.reshape(len(missing), -1), index.reshape(len(missing), -1)
    weight = 1.0 / np.maximum(distance, 1e-12)
    blended = np.einsum("kn,knc->kc", weight, out[known][index]) / weight.sum(1, keepdims=True)
    out[missing] = blended
    return out


def colours(
    views: PaintedViews,
    vertices: np.ndarray,
    faces: np.ndarray,
    points: np.ndarray,
    normals: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Base colour (k, 3) float32 in [0, 1] at surface points, unseen ones filled, and the share
    of points some view sees. Arguments as :func:`sample`."""
    sampled, total = sample(views, vertices, faces, points, normals)
    seen = total > 0
    share = float(seen.mean()) if len(seen) else 0.0
    return fill_unseen(points, sampled, seen), share
