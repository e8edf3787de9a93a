"""Vertex normals and MikkTSpace-convention tangent frames for a UV-mapped mesh.

The bake writes tangent-space normals against these frames and the exporter ships them as the
glTF TANGENT attribute, so the two always agree. They follow MikkTSpace's conventions: T is
dP/du and B is dP/dv with v pointing up (glTF's +Y-up normal-map convention), face tangents are
projected off the vertex normal and angle-weighted, and the shader rebuilds the bitangent as
``w * cross(N, T)``. Our charts are never mirrored, so ``w`` is +1 wherever UVs are sound; a
face with mirrored incoming UVs gets -1 on its own vertices, as MikkTSpace does.
"""

from __future__ import annotations

import numba
import numpy as np


def _corner_angles(corners: np.ndarray) -> np.ndarray:
    """Interior angle at each corner: corners (m, 3, 3) -> (m, 3)."""
    angles = np.empty(corners.shape[:2])
    for k in range(3):
        a = corners[:, (k + 1) % 3] - corners[:, k]
        b = corners[:, (k + 2) % 3] - corners[:, k]
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30
        )
        angles[:, k] = np.arccos(np.clip(cos, -1.0, 1.0))
    return angles


def vertex_normals(
    vertices: np.ndarray, faces: np.ndarray, weld: np.ndarray | None = None
) -> np.ndarray:
    """Angle-weighted unit vertex normals (n, 3) float32.

    vertices (n, 3), faces (m, 3); weld (n,) optional ids that make split copies of a vertex
    (UV seams) share one smooth normal.
    """
    ids = np.arange(len(vertices)) if weld is None else np.asarray(weld, dtype=np.int64)
    summed = np.zeros((int(ids.max()) + 1 if len(ids) else 0, 3))
    _accumulate_normals(
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
        ids,
        summed,
    )
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-30)
    return summed[ids].astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _accumulate_normals(vertices, faces, ids, summed):
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        # Scalars, not row slices: a slice difference is a heap allocation per face.
        e1x, e1y, e1z = (vertices[b, 0] - vertices[a, 0], vertices[b, 1] - vertices[a, 1],
                         vertices[b, 2] - vertices[a, 2])  # fmt: skip
        e2x, e2y, e2z = (vertices[c, 0] - vertices[a, 0], vertices[c, 1] - vertices[a, 1],
                         vertices[c, 2] - vertices[a, 2])  # fmt: skip
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        length = np.sqrt(nx * nx + ny * ny + nz * nz)
        if length == 0.0:
            continue
        nx, ny, nz = nx / length, ny / length, nz / length
        for k in range(3):
            p = faces[f, k]
            q = faces[f, (k + 1) % 3]
            r = faces[f, (k + 2) % 3]
            ux = vertices[q, 0] - vertices[p, 0]
            uy = vertices[q, 1] - vertices[p, 1]
            uz = vertices[q, 2] - vertices[p, 2]
            vx = vertices[r, 0] - vertices[p, 0]
            vy = vertices[r, 1] - vertices[p, 1]
            vz = vertices[r, 2] - vertices[p, 2]
            lu = np.sqrt(ux * ux + uy * uy + uz * uz)
            lv = np.sqrt(vx * vx + vy * vy + vz * vz)
            if lu == 0.0 or lv == 0.0:
                continue
            cos = (ux * vx + uy * vy + uz * vz) / (lu * lv)
            angle = np.arccos(min(max(cos, -1.0), 1.0))
            target = ids[p]
            summed[target, 0] += angle * nx
            summed[target, 1] += angle * ny
            summed[target, 2] += angle * nz


def face_uv_derivatives(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face dP/du (m, 3), dP/dv (m, 3) with v up, and the UV orientation sign (m,)."""
    corners = vertices[faces].astype(np.float64)
    uv = uvs[faces].astype(np.float64)
    uv[..., 1] = -uv[..., 1]  # glTF v runs down; MikkTSpace's v runs up
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    safe = np.where(np.abs(det) > 1e-30, det, 1e-30)
    dp_du = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) / safe[:, None]
    dp_dv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) / safe[:, None]
    return dp_du, dp_dv, np.where(det < 0, -1.0, 1.0)


def vertex_tangents(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, normals: np.ndarray
) -> np.ndarray:
    """MikkTSpace-style tangents (n, 4) float32: xyz unit, w = +-1 handedness.

    vertices (n, 3), faces (m, 3), uvs (n, 2) glTF convention, normals (n, 3) unit.
    """
    corners = vertices[faces].astype(np.float64)
    dp_du, _, sign = face_uv_derivatives(vertices, faces, uvs)
    angles = _corner_angles(corners)
    summed = np.zeros((len(vertices), 3))
    handed = np.zeros(len(vertices))
    for k in range(3):
        n = normals[faces[:, k]].astype(np.float64)
        t = dp_du - n * np.einsum("ij,ij->i", dp_du, n)[:, None]
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-30)
        weight = angles[:, k]
        for c in range(3):
            summed[:, c] += np.bincount(faces[:, k], t[:, c] * weight, minlength=len(vertices))
        handed += np.bincount(faces[:, k], sign * weight, minlength=len(vertices))
    n = normals.astype(np.float64)
    summed -= n * np.einsum("ij,ij->i", summed, n)[:, None]
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    fallback = np.cross(n, np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    summed = np.where(length > 1e-12, summed / np.maximum(length, 1e-30), fallback)
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-30)
    w = np.where(handed < 0, -1.0, 1.0)
    return np.hstack([summed, w[:, None]]).astype(np.float32)
