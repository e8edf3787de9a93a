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
    return _unit_rows(summed, ids)


@numba.njit(cache=True, nogil=True)
def _unit_rows(summed, ids):
    """Rows of ``summed`` made unit (as dividing by np.linalg.norm does), gathered by ``ids``
    into float32."""
    for r in range(summed.shape[0]):
        scale = max(norm3(summed[r, 0], summed[r, 1], summed[r, 2]), 1e-30)
        for c in range(3):
            summed[r, c] /= scale
    out = np.empty((ids.shape[0], 3), np.float32)
    for i in range(ids.shape[0]):
        for c in range(3):
            out[i, c] = summed[ids[i], c]
    return out


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


def vertex_tangents(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, normals: np.ndarray
) -> np.ndarray:
    """MikkTSpace-style tangents (n, 4) float32: xyz unit, w = +-1 handedness.

    vertices (n, 3), faces (m, 3), uvs (n, 2) glTF convention, normals (n, 3) unit.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    dp_du, sign, cos = _face_frames(
        np.ascontiguousarray(vertices), faces, np.ascontiguousarray(uvs)
    )
    # numpy's arccos, not numba's: the two differ in the last bit for some arguments.
    angles = np.arccos(cos)
    return _vertex_frames(faces, np.ascontiguousarray(normals), dp_du, sign, angles)


@numba.njit(cache=True, nogil=True, inline="always")
def dot3(ax, ay, az, bx, by, bz):
    """a . b summed as numpy's einsum("ij,ij->i") sums three terms (x + z, then + y)."""
    return (ax * bx + az * bz) + ay * by


@numba.njit(cache=True, nogil=True, inline="always")
def norm3(x, y, z):
    """|(x, y, z)| summed as np.linalg.norm(axis=1) sums it."""
    return np.sqrt((x * x + y * y) + z * z)


@numba.njit(cache=True, nogil=True)
def _face_frames(vertices, faces, uvs):
    """Per face dP/du (m, 3) with v up (MikkTSpace's convention; glTF v runs down), the UV
    orientation sign (m,) and the clipped cosine of each corner's interior angle (m, 3)."""
    m = faces.shape[0]
    dp_du = np.empty((m, 3))
    sign = np.empty(m)
    cos = np.empty((m, 3))
    p = np.empty((3, 3))
    for f in range(m):
        for k in range(3):
            for c in range(3):
                p[k, c] = np.float64(vertices[faces[f, k], c])
        u0, u1, u2 = (np.float64(uvs[faces[f, 0], 0]), np.float64(uvs[faces[f, 1], 0]),
                      np.float64(uvs[faces[f, 2], 0]))  # fmt: skip
        # glTF v runs down; MikkTSpace's v runs up
        v0, v1, v2 = (-np.float64(uvs[faces[f, 0], 1]), -np.float64(uvs[faces[f, 1], 1]),
                      -np.float64(uvs[faces[f, 2], 1]))  # fmt: skip
        d1u, d1v, d2u, d2v = u1 - u0, v1 - v0, u2 - u0, v2 - v0
        det = d1u * d2v - d2u * d1v
        safe = det if np.abs(det) > 1e-30 else 1e-30
        for c in range(3):
            e1, e2 = p[1, c] - p[0, c], p[2, c] - p[0, c]
            dp_du[f, c] = (e1 * d2v - e2 * d1v) / safe
        sign[f] = -1.0 if det < 0 else 1.0
        for k in range(3):
            q, r = (k + 1) % 3, (k + 2) % 3
            ax, ay, az = p[q, 0] - p[k, 0], p[q, 1] - p[k, 1], p[q, 2] - p[k, 2]
            bx, by, bz = p[r, 0] - p[k, 0], p[r, 1] - p[k, 1], p[r, 2] - p[k, 2]
            value = dot3(ax, ay, az, bx, by, bz) / max(norm3(ax, ay, az) * norm3(bx, by, bz), 1e-30)
            cos[f, k] = min(max(value, -1.0), 1.0)
    return dp_du, sign, cos


@numba.njit(cache=True, nogil=True)
def _vertex_frames(faces, normals, dp_du, sign, angles):
    """Angle-weighted sums of the face tangents (projected off each corner's vertex normal)
    and handedness per vertex, made unit and orthogonal to the normal: (n, 4) float32.

    Sums run in numpy's order (per corner slot k, faces in order, then the three slots).
    """
    n = normals.shape[0]
    summed = np.zeros((n, 3))
    handed = np.zeros(n)
    slot = np.empty((n, 3))
    slot_handed = np.empty(n)
    for k in range(3):
        slot[:] = 0.0
        slot_handed[:] = 0.0
        for f in range(faces.shape[0]):
            v = faces[f, k]
            nx, ny, nz = (np.float64(normals[v, 0]), np.float64(normals[v, 1]),
                          np.float64(normals[v, 2]))  # fmt: skip
            tx, ty, tz = dp_du[f, 0], dp_du[f, 1], dp_du[f, 2]
            d = dot3(tx, ty, tz, nx, ny, nz)
            tx, ty, tz = tx - nx * d, ty - ny * d, tz - nz * d
            length = max(norm3(tx, ty, tz), 1e-30)
            weight = angles[f, k]
            slot[v, 0] += tx / length * weight
            slot[v, 1] += ty / length * weight
            slot[v, 2] += tz / length * weight
            slot_handed[v] += sign[f] * weight
        for v in range(n):
            for c in range(3):
                summed[v, c] += slot[v, c]
            handed[v] += slot_handed[v]
    out = np.empty((n, 4), np.float32)
    for v in range(n):
        nx, ny, nz = np.float64(normals[v, 0]), np.float64(normals[v, 1]), np.float64(normals[v, 2])
        sx, sy, sz = summed[v, 0], summed[v, 1], summed[v, 2]
        d = dot3(sx, sy, sz, nx, ny, nz)
        sx, sy, sz = sx - nx * d, sy - ny * d, sz - nz * d
        length = norm3(sx, sy, sz)
        if length > 1e-12:
            scale = max(length, 1e-30)
            sx, sy, sz = sx / scale, sy / scale, sz / scale
        else:  # cross(n, x) or cross(n, y) term for term, as np.cross computes it
            hx, hy, hz = (1.0, 0.0, 0.0) if np.abs(nx) < 0.9 else (0.0, 1.0, 0.0)
            sx, sy, sz = ny * hz - nz * hy, nz * hx - nx * hz, nx * hy - ny * hx
        scale = max(norm3(sx, sy, sz), 1e-30)
        out[v, 0], out[v, 1], out[v, 2] = sx / scale, sy / scale, sz / scale
        out[v, 3] = -1.0 if handed[v] < 0 else 1.0
    return out
