"""Triangle rasterisation onto a texel grid, the inner loop of baking and of the preview.

Texel (row, col) has its centre at ((col + 0.5) / width, (row + 0.5) / height) in the [0, 1]^2
plane the triangles are given in. A texel belongs to the first triangle (or, with depths, the
nearest) whose closed area contains its centre, with a small relative epsilon so shared edges
leave no cracks. Compiled with numba (cached on disk); pure loops, no Python objects.
"""

from __future__ import annotations

import numba
import numpy as np

_EDGE_EPS = 1e-7  # barycentric slack so texels on a shared edge are never missed


@numba.njit(cache=True, nogil=True)
def _rasterize(points, faces, depths, use_depth, with_bary, height, width, face_id, bary, zbuf):
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay = points[a, 0] * width, points[a, 1] * height
        bx, by = points[b, 0] * width, points[b, 1] * height
        cx, cy = points[c, 0] * width, points[c, 1] * height
        det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        if det == 0.0:
            continue
        inv = 1.0 / det
        col0 = max(int(np.floor(min(ax, bx, cx) - 0.5)), 0)
        col1 = min(int(np.ceil(max(ax, bx, cx) - 0.5)), width - 1)
        row0 = max(int(np.floor(min(ay, by, cy) - 0.5)), 0)
        row1 = min(int(np.ceil(max(ay, by, cy) - 0.5)), height - 1)
        for row in range(row0, row1 + 1):
            py = row + 0.5
            for col in range(col0, col1 + 1):
                px = col + 0.5
                w1 = ((px - ax) * (cy - ay) - (cx - ax) * (py - ay)) * inv
                w2 = ((bx - ax) * (py - ay) - (px - ax) * (by - ay)) * inv
                w0 = 1.0 - w1 - w2
                if w0 < -_EDGE_EPS or w1 < -_EDGE_EPS or w2 < -_EDGE_EPS:
                    continue
                if use_depth:
                    z = w0 * depths[a] + w1 * depths[b] + w2 * depths[c]
                    if z >= zbuf[row, col]:
                        continue
                    zbuf[row, col] = z
                elif face_id[row, col] >= 0:
                    continue
                face_id[row, col] = f
                if with_bary:
                    bary[row, col, 0] = w0
                    bary[row, col, 1] = w1
                    bary[row, col, 2] = w2


def rasterize(
    points: np.ndarray,
    faces: np.ndarray,
    height: int,
    width: int,
    depths: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel, and where inside it.

    points (n, 2) float in [0, 1] (x right, y down the rows), faces (m, 3) int, depths (n,)
    float or None (smaller is nearer; None: first triangle wins).
    Returns face_id (height, width) int32 (-1 where empty) and bary (height, width, 3) float32.
    """
    return _run(points, faces, height, width, depths, with_bary=True)


def rasterize_faces(points: np.ndarray, faces: np.ndarray, height: int, width: int) -> np.ndarray:
    """Only the face_id image of :func:`rasterize` (no depths): a 2048 px atlas in a third of
    the time, for callers that compute their own barycentrics."""
    return _run(points, faces, height, width, None, with_bary=False)[0]


def _run(
    points: np.ndarray,
    faces: np.ndarray,
    height: int,
    width: int,
    depths: np.ndarray | None,
    with_bary: bool,
) -> tuple[np.ndarray, np.ndarray]:
    face_id = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3) if with_bary else (1, 1, 3), dtype=np.float32)
    zbuf = np.full((height, width) if depths is not None else (1, 1), np.inf, dtype=np.float64)
    _rasterize(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
        np.zeros(1) if depths is None else np.ascontiguousarray(depths, dtype=np.float64),
        depths is not None,
        with_bary,
        height,
        width,
        face_id,
        bary,
        zbuf,
    )
    return face_id, bary
