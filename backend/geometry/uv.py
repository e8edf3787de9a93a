"""Stage 3, UV unwrap: planar-projected charts that are never mirrored, packed with padding.

Faces are grouped by the box direction their normal is nearest to, split into edge-connected
charts, tiny charts are folded into a neighbour whose axis still sees them from the front, and
every chart is projected along its axis. Because each face's normal is within 90 deg of its
chart's axis, the projection keeps its winding: no flipped (mirrored) UVs, so tangent-space
normal maps are right (unlike xatlas' default, which mirrors a third of the faces). Charts are
turned to their principal axes and packed at one texel density by their rasterised shapes
(uv_pack.py; by their boxes above ``uv_pack.MAX_SHAPE_CHARTS`` charts), with padding in texels
of the target texture size. UVs use the glTF convention: u right, v down from the top-left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from backend.geometry import adjacency, tolerances
from backend.geometry.tangents import dot3, norm3
from backend.geometry.uv_pack import pack_charts

BOX_AXES = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64
)


@dataclass
class UVResult:
    """The mesh split along chart seams, with UVs.

    vertices (n', 3) float32, faces (m, 3) int64, uvs (n', 2) float32 (glTF convention),
    source_vertex (n',) int64 index of each vertex in the input, chart (m,) int64 per face.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    source_vertex: np.ndarray
    chart: np.ndarray
    charts: int
    utilization: float
    flipped_faces: int


def unit_face_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (m, 3) float64 and areas (m,) of faces (m, 3) over vertices (n, 3)."""
    return _face_normals(np.ascontiguousarray(vertices), np.ascontiguousarray(faces))


@numba.njit(cache=True, nogil=True)
def _face_normals(vertices, faces):
    """Unit normals and areas, in float64, bit for bit as np.cross and np.linalg.norm give."""
    m = faces.shape[0]
    normals = np.empty((m, 3))
    areas = np.empty(m)
    for f in range(m):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x = np.float64(vertices[b, 0]) - np.float64(vertices[a, 0])
        e1y = np.float64(vertices[b, 1]) - np.float64(vertices[a, 1])
        e1z = np.float64(vertices[b, 2]) - np.float64(vertices[a, 2])
        e2x = np.float64(vertices[c, 0]) - np.float64(vertices[a, 0])
        e2y = np.float64(vertices[c, 1]) - np.float64(vertices[a, 1])
        e2z = np.float64(vertices[c, 2]) - np.float64(vertices[a, 2])
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        length = norm3(nx, ny, nz)
        scale = max(length, 1e-30)
        normals[f, 0], normals[f, 1], normals[f, 2] = nx / scale, ny / scale, nz / scale
        areas[f] = 0.5 * length
    return normals, areas


def uv_signed_areas(uvs: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed UV area per face, positive when counter-clockwise with v pointing up. (m,)"""
    return _uv_signed_areas(np.ascontiguousarray(uvs), np.ascontiguousarray(faces))


@numba.njit(cache=True, nogil=True)
def _uv_signed_areas(uvs, faces):
    out = np.empty(faces.shape[0])
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        # glTF v runs down; winding is judged with v up
        u0, u1, u2 = np.float64(uvs[a, 0]), np.float64(uvs[b, 0]), np.float64(uvs[c, 0])
        v0, v1, v2 = -np.float64(uvs[a, 1]), -np.float64(uvs[b, 1]), -np.float64(uvs[c, 1])
        out[f] = 0.5 * ((u1 - u0) * (v2 - v0) - (v1 - v0) * (u2 - u0))
    return out


def count_flipped(uvs: np.ndarray, faces: np.ndarray) -> int:
    """Faces whose UV triangle is mirrored (or collapsed) relative to their 3D winding."""
    return int(np.count_nonzero(uv_signed_areas(uvs, faces) <= 0))


def segment_charts(
    normals: np.ndarray, faces: np.ndarray, n_vertices: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Chart id per face (m,) and each chart's projection axis (c, 3).

    normals (m, 3) unit face normals, faces (m, 3); groups (m,) int or None: faces of one
    group (the two triangles of a quad, which share an edge) take one direction from their
    summed normal, so they always land in the same chart.
    """
    facing = normals
    if groups is not None:
        summed = np.zeros((int(groups.max()) + 1, 3))
        np.add.at(summed, groups, normals)
        facing = summed[groups]
    direction = np.argmax(facing @ BOX_AXES.T, axis=1)
    a, b, _ = adjacency.manifold_face_pairs(faces, n_vertices)
    chart = _components(len(faces), a, b, direction[a] == direction[b])
    axes = BOX_AXES[direction[np.unique(chart, return_index=True)[1]]]
    for _ in range(3):  # fold tiny charts (noise at direction borders) into a neighbour
        chart, axes, merged = _merge_small_charts(normals, chart, axes, a, b)
        if not merged:
            break
    return chart, axes


def _components(n_faces: int, a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return adjacency.component_labels(n_faces, a[keep], b[keep])


def _merge_small_charts(
    normals: np.ndarray, chart: np.ndarray, axes: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    n_charts = len(axes)
    sizes = np.bincount(chart, minlength=n_charts)
    border = chart[a] != chart[b]
    src = np.concatenate([chart[a][border], chart[b][border]])
    dst = np.concatenate([chart[b][border], chart[a][border]])
    take = (sizes[src] < tolerances.MIN_CHART_FACES_MERGE) & (sizes[dst] > sizes[src])
    src, dst = src[take], dst[take]
    if len(src) == 0:
        return chart, axes, 0
    # Each small chart picks the larger neighbour it shares the most edges with ...
    keys, counts = np.unique(src * n_charts + dst, return_counts=True)
    key_src = keys // n_charts
    order = np.lexsort((-counts, key_src))
    best = order[np.unique(key_src[order], return_index=True)[1]]
    target = np.arange(n_charts)
    target[key_src[best]] = keys[best] % n_charts
    moving = target != np.arange(n_charts)
    chained = moving & moving[target]  # its neighbour moves too: wait for the next round
    target[chained] = np.flatnonzero(chained)
    # ... and joins it only if that chart's axis sees every one of its faces from the front.
    facing = np.einsum("ij,ij->i", normals, axes[target[chart]])
    bad = np.zeros(n_charts, dtype=bool)
    np.logical_or.at(bad, chart, facing < tolerances.CHART_ANGLE_COS * 0.5)
    target[bad] = np.flatnonzero(bad)
    moved = int(np.count_nonzero(target != np.arange(n_charts)))
    labels, relabel = np.unique(target, return_inverse=True)
    return relabel[chart], axes[labels], moved


def project_charts(
    vertices: np.ndarray, faces: np.ndarray, chart: np.ndarray, axes: np.ndarray
) -> np.ndarray:
    """2D coordinates of every face corner in its chart's plane: (m, 3, 2) float64, v up.

    Each chart is rotated onto its principal axes so its bounding box is tight.
    """
    helper = np.where(np.abs(axes[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    tangent = np.cross(helper, axes)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    bitangent = np.cross(axes, tangent)
    chart = np.ascontiguousarray(chart, dtype=np.int64)
    count = np.bincount(chart, minlength=len(axes)) * 3.0
    flat, mean, sxx, syy, sxy = _project(
        np.ascontiguousarray(vertices),
        np.ascontiguousarray(faces),
        chart,
        tangent,
        bitangent,
        count,
    )
    # Principal axes per chart from corner second moments (a rotation: never mirrors).
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    return _rotate(flat, chart, mean, np.cos(angle), np.sin(angle))


@numba.njit(cache=True, nogil=True)
def _project(vertices, faces, chart, tangent, bitangent, count):
    """Corners on their chart's (tangent, bitangent) plane (m, 3, 2), each chart's mean corner
    (c, 2) and its corners' sums of dx^2, dy^2 and dx * dy about it (c,) x 3; sums in corner
    order, as np.bincount adds them. count (c,) corners per chart."""
    n = tangent.shape[0]
    flat = np.empty((faces.shape[0], 3, 2))
    mean = np.zeros((n, 2))
    for f in range(faces.shape[0]):
        c = chart[f]
        for k in range(3):
            v = faces[f, k]
            x, y, z = (
                np.float64(vertices[v, 0]),
                np.float64(vertices[v, 1]),
                np.float64(vertices[v, 2]),
            )
            flat[f, k, 0] = dot3(x, y, z, tangent[c, 0], tangent[c, 1], tangent[c, 2])
            flat[f, k, 1] = dot3(x, y, z, bitangent[c, 0], bitangent[c, 1], bitangent[c, 2])
            mean[c, 0] += flat[f, k, 0]
            mean[c, 1] += flat[f, k, 1]
    for c in range(n):
        mean[c, 0] /= max(count[c], 1.0)
        mean[c, 1] /= max(count[c], 1.0)
    sxx, syy, sxy = np.zeros(n), np.zeros(n), np.zeros(n)
    for f in range(flat.shape[0]):
        c = chart[f]
        for k in range(3):
            dx, dy = flat[f, k, 0] - mean[c, 0], flat[f, k, 1] - mean[c, 1]
            sxx[c] += dx * dx
            syy[c] += dy * dy
            sxy[c] += dx * dy
    return flat, mean, sxx, syy, sxy


@numba.njit(cache=True, nogil=True)
def _rotate(flat, chart, mean, cos, sin):
    """Corners about their chart's mean, turned by the chart's angle (cos, sin)."""
    out = np.empty_like(flat)
    for f in range(flat.shape[0]):
        c = chart[f]
        for k in range(3):
            dx, dy = flat[f, k, 0] - mean[c, 0], flat[f, k, 1] - mean[c, 1]
            out[f, k, 0] = cos[c] * dx + sin[c] * dy
            out[f, k, 1] = -sin[c] * dx + cos[c] * dy
    return out


def split_seams(
    faces: np.ndarray, chart: np.ndarray, n_vertices: int, n_charts: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A vertex is split once per chart it touches: those are the seams.

    faces (m, 3), chart (m,) -> the new vertices' source vertex (n',) int64, ordered by
    (source vertex, chart), the first corner (flat index into faces) of each, and the faces
    over the new vertices (m, 3) int64: np.unique of the corners' (vertex, chart) keys with
    return_index and return_inverse, by two counting sorts in place of a comparison sort.
    """
    return _split_seams(
        np.ascontiguousarray(faces), np.ascontiguousarray(chart), n_vertices, n_charts
    )


@numba.njit(cache=True, nogil=True)
def _split_seams(faces, chart, n_vertices, n_charts):
    n = faces.shape[0] * 3
    corner_vertex = faces.ravel()
    by_chart = _counting_order(np.repeat(chart, 3), np.arange(n), n_charts)
    order = _counting_order(corner_vertex, by_chart, n_vertices)  # by vertex, chart, corner
    source = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    inverse = np.empty(n, np.int64)
    count = 0
    last_vertex = last_chart = -1
    for i in order:
        v, c = corner_vertex[i], chart[i // 3]
        if v != last_vertex or c != last_chart:
            source[count], first[count] = v, i
            count += 1
            last_vertex, last_chart = v, c
        inverse[i] = count - 1
    return source[:count].copy(), first[:count].copy(), inverse.reshape(-1, 3)


@numba.njit(cache=True, nogil=True)
def _counting_order(key, items, n_keys):
    """``items`` stably sorted by ``key[item]`` (keys in [0, n_keys))."""
    start = np.zeros(n_keys + 1, np.int64)
    for i in items:
        start[key[i] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    out = np.empty_like(items)
    for i in items:
        out[start[key[i]]] = i
        start[key[i]] += 1
    return out


def unwrap(
    vertices: np.ndarray,
    faces: np.ndarray,
    texture_size: int = 1024,
    padding_px: int = tolerances.UV_PADDING_PX,
    groups: np.ndarray | None = None,
) -> UVResult:
    """Cut ``faces`` (m, 3) over ``vertices`` (n, 3) into charts and give every corner a UV.

    ``groups`` (m,) keeps faces together in one chart (see :func:`segment_charts`).
    """
    normals, _areas = unit_face_normals(vertices, faces)
    chart, axes = segment_charts(normals, faces, len(vertices), groups)
    corners = project_charts(vertices, faces, chart, axes)
    uv_corners = pack_charts(corners, chart, len(axes), texture_size, padding_px)
    source_vertex, first, new_faces = split_seams(faces, chart, len(vertices), len(axes))
    uvs = uv_corners.reshape(-1, 2)[first].astype(np.float32)
    signed = uv_signed_areas(uvs, new_faces)
    return UVResult(
        vertices=np.asarray(vertices, dtype=np.float32)[source_vertex],
        faces=new_faces,
        uvs=uvs,
        source_vertex=source_vertex,
        chart=chart,
        charts=len(axes),
        utilization=float(np.clip(np.sum(np.abs(signed)), 0.0, 1.0)),
        flipped_faces=int(np.count_nonzero(signed <= 0)),
    )
