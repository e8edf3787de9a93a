"""Carry high-resolution surface data into a low-resolution mesh's texture atlas.

Two compiled kernels do the heavy part of baking. ``closest_faces`` finds, for every
high-resolution vertex, the nearest low-resolution face among those around a nearby
low-resolution vertex. ``splat`` then draws every high-resolution triangle straight into the
atlas: each corner is placed through the affine 3D -> UV map of its low-resolution face, once per
chart its corners touch, so triangles straddling a seam fill both sides. Attributes (normal,
colour, position) are interpolated with true barycentrics, and where triangles overlap the one
closest to the low-resolution surface wins. This is what a ray-cast bake computes, without a
ray tracer, at about one pass over the high-resolution triangles.
"""

from __future__ import annotations

import numba
import numpy as np

from backend.geometry.adjacency import chunk_count, chunk_offsets


@numba.njit(cache=True, nogil=True, inline="always")
def _closest_on_triangle(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """Barycentric coordinates of the point of triangle abc nearest to p (Ericson, 5.1.5).

    Scalars only: small temporary arrays would be heap allocations in the innermost loop.
    """
    abx, aby, abz = bx - ax, by - ay, bz - az
    acx, acy, acz = cx - ax, cy - ay, cz - az
    apx, apy, apz = px - ax, py - ay, pz - az
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    if d1 <= 0.0 and d2 <= 0.0:
        return 1.0, 0.0, 0.0
    bpx, bpy, bpz = px - bx, py - by, pz - bz
    d3 = abx * bpx + aby * bpy + abz * bpz
    d4 = acx * bpx + acy * bpy + acz * bpz
    if d3 >= 0.0 and d4 <= d3:
        return 0.0, 1.0, 0.0
    vc = d1 * d4 - d3 * d2
    if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0:
        v = d1 / (d1 - d3)
        return 1.0 - v, v, 0.0
    cpx, cpy, cpz = px - cx, py - cy, pz - cz
    d5 = abx * cpx + aby * cpy + abz * cpz
    d6 = acx * cpx + acy * cpy + acz * cpz
    if d6 >= 0.0 and d5 <= d6:
        return 0.0, 0.0, 1.0
    vb = d5 * d2 - d1 * d6
    if vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0:
        w = d2 / (d2 - d6)
        return 1.0 - w, 0.0, w
    va = d3 * d6 - d5 * d4
    if va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return 0.0, 1.0 - w, w
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return 1.0 - v - w, v, w


@numba.njit(cache=True, nogil=True, inline="always")
def _squared_distance_to_face(px, py, pz, f, vertices, faces):
    """Squared distance from point p to face ``f`` of (vertices, faces)."""
    a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
    ax, ay, az = vertices[a, 0], vertices[a, 1], vertices[a, 2]
    bx, by, bz = vertices[b, 0], vertices[b, 1], vertices[b, 2]
    cx, cy, cz = vertices[c, 0], vertices[c, 1], vertices[c, 2]
    u, v, w = _closest_on_triangle(px, py, pz, ax, ay, az, bx, by, bz, cx, cy, cz)
    qx = u * ax + v * bx + w * cx - px
    qy = u * ay + v * by + w * cy - py
    qz = u * az + v * bz + w * cz - pz
    return qx * qx + qy * qy + qz * qz


@numba.njit(cache=True, nogil=True, parallel=True)
def _closest_faces(points, starts, ring_ptr, ring_faces, lo_vertices, lo_faces, face, dist):
    for i in numba.prange(points.shape[0]):  # points are independent: all cores
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        best, best_d = -1, np.inf
        for k in range(starts.shape[1]):
            s = starts[i, k]
            for j in range(ring_ptr[s], ring_ptr[s + 1]):
                f = ring_faces[j]
                d = _squared_distance_to_face(px, py, pz, f, lo_vertices, lo_faces)
                if d < best_d:
                    best, best_d = f, d
        face[i] = best
        dist[i] = np.sqrt(best_d)


@numba.njit(cache=True, nogil=True, parallel=True)
def _closest_of_candidates(points, candidates, vertices, faces, face, dist):
    for i in numba.prange(points.shape[0]):  # points are independent: all cores
        px, py, pz = points[i, 0], points[i, 1], points[i, 2]
        best, best_d = -1, np.inf
        for j in range(candidates.shape[1]):
            f = candidates[i, j]
            d = _squared_distance_to_face(px, py, pz, f, vertices, faces)
            if d < best_d:
                best, best_d = f, d
        face[i] = best
        dist[i] = np.sqrt(best_d)


def closest_of_candidates(
    points: np.ndarray, candidates: np.ndarray, vertices: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest face to each point among its ``candidates`` (k, j) face indices.

    points (k, 3), vertices (n, 3), faces (m, 3) -> face (k,) int64, distance (k,) float64.
    """
    face = np.empty(len(points), dtype=np.int64)
    dist = np.empty(len(points), dtype=np.float64)
    _closest_of_candidates(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(candidates, dtype=np.int64).reshape(len(points), -1),
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
        face,
        dist,
    )
    return face, dist


def closest_faces(
    points: np.ndarray,
    near_vertex: np.ndarray,
    lo_vertices: np.ndarray,
    lo_faces: np.ndarray,
    weld: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest low-res face to each point among the faces around its ``near_vertex`` set.

    points (k, 3), near_vertex (k,) or (k, j) nearby low-res vertex indices, lo_vertices
    (n, 3), lo_faces (m, 3),
    weld (n,) optional ids joining split copies of a vertex (so the search crosses UV seams).
    Returns face (k,) int64 and distance (k,) float64.
    """
    ids = np.arange(len(lo_vertices)) if weld is None else weld
    corner_owner = ids[lo_faces].reshape(-1)
    order = np.argsort(corner_owner, kind="stable")
    ring_faces = (order // 3).astype(np.int64)
    ring_ptr = np.zeros(int(ids.max()) + 2, dtype=np.int64)
    np.cumsum(np.bincount(corner_owner, minlength=len(ring_ptr) - 1), out=ring_ptr[1:])
    face = np.empty(len(points), dtype=np.int64)
    dist = np.empty(len(points), dtype=np.float64)
    _closest_faces(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(ids[near_vertex].reshape(len(points), -1), dtype=np.int64),
        ring_ptr,
        ring_faces,
        np.ascontiguousarray(lo_vertices, dtype=np.float64),
        np.ascontiguousarray(lo_faces, dtype=np.int64),
        face,
        dist,
    )
    return face, dist


def face_uv_maps(
    vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Affine 3D -> UV map of each face: uv = origin + matrix @ (p - corner0).

    vertices (n, 3), faces (m, 3), uvs (n, 2) -> matrix (m, 2, 3), origin (m, 2) (= corner 0's
    UV); points off the face plane map as their projection along the face normal.
    """
    corners = vertices[faces].astype(np.float64)
    uv = uvs[faces].astype(np.float64)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    normal = np.cross(e1, e2)
    frame = np.stack([e1, e2, normal], axis=2)  # columns
    det = np.linalg.det(frame)
    frame[np.abs(det) < 1e-30] = np.eye(3)  # degenerate faces map everything to one point
    target = np.stack([uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0], np.zeros_like(uv[:, 0])], axis=2)
    matrix = target @ np.linalg.inv(frame)
    return matrix, uv[:, 0]


SPLAT_BAND_ROWS = 16  # texel rows per band: the unit of work a thread draws alone


@numba.njit(cache=True, nogil=True, inline="always")
def _project(hi_vertices, hi_faces, t, fk, matrix, origin, height, width, px, py):
    """Corners of high-res triangle ``t`` in texels through low-res face ``fk``'s UV map."""
    for j in range(3):
        h = hi_faces[t, j]
        x, y, z = hi_vertices[h, 0], hi_vertices[h, 1], hi_vertices[h, 2]
        px[j] = (origin[fk, 0] + matrix[fk, 0, 0] * x + matrix[fk, 0, 1] * y
                 + matrix[fk, 0, 2] * z) * width  # fmt: skip
        py[j] = (origin[fk, 1] + matrix[fk, 1, 0] * x + matrix[fk, 1, 1] * y
                 + matrix[fk, 1, 2] * z) * height  # fmt: skip


@numba.njit(cache=True, nogil=True, parallel=True)
def _splat_rows(hi_vertices, hi_faces, vertex_face, face_chart, matrix, origin, height, width,
                through, first_row, last_row):  # fmt: skip
    """For each triangle and corner k: the low-res face it is drawn through (-1: none, as an
    earlier corner's chart already draws it) and the texel rows it covers."""
    for t in numba.prange(hi_faces.shape[0]):
        px = np.empty(3)
        py = np.empty(3)
        i0, i1 = hi_faces[t, 0], hi_faces[t, 1]
        for k in range(3):
            through[t, k] = -1
            fk = vertex_face[hi_faces[t, k]]
            chart = face_chart[fk]
            if k >= 1 and chart == face_chart[vertex_face[i0]]:
                continue
            if k == 2 and chart == face_chart[vertex_face[i1]]:
                continue
            _project(hi_vertices, hi_faces, t, fk, matrix, origin, height, width, px, py)
            first_row[t, k] = max(int(np.floor(min(py[0], py[1], py[2]) - 0.5)), 0)
            last_row[t, k] = min(int(np.ceil(max(py[0], py[1], py[2]) - 0.5)), height - 1)
            if first_row[t, k] <= last_row[t, k]:
                through[t, k] = fk


@numba.njit(cache=True, nogil=True, parallel=True)
def _band_lists(through, first_row, last_row, bands, band_rows, chunks):
    """Draws (3 t + k) overlapping each band of rows, in triangle order (so the nearest-wins
    ties break as in one sequential pass): per-chunk band counts, then each chunk writes its
    draws at its own offsets, both over ``chunks`` runs of triangles in parallel (one serial
    pass was ~0.1 s of the splat on a 16-core box, where the drawing took ~0.05)."""
    m = through.shape[0]
    counts = np.zeros((chunks, bands), np.int64)
    for c in numba.prange(chunks):
        for t in range(c * m // chunks, (c + 1) * m // chunks):
            for k in range(3):
                if through[t, k] >= 0:
                    for b in range(first_row[t, k] // band_rows, last_row[t, k] // band_rows + 1):
                        counts[c, b] += 1
    start = chunk_offsets(counts)  # triangle order inside a band
    draws = np.empty(start[bands], np.int32)
    for c in numba.prange(chunks):
        fill = counts[c]
        for t in range(c * m // chunks, (c + 1) * m // chunks):
            for k in range(3):
                if through[t, k] >= 0:
                    for b in range(first_row[t, k] // band_rows, last_row[t, k] // band_rows + 1):
                        draws[fill[b]] = 3 * t + k
                        fill[b] += 1
    return start, draws


def spread_order(count: int) -> np.ndarray:
    """0..count-1 in a stride order (count, int64): a parallel loop over it gives each
    thread's equal static run bands from all over the atlas, not one region of it (charts
    pack unevenly: a run of dense rows kept one thread busy while the others waited)."""
    stride = max(1, int(count * 0.618))
    while np.gcd(stride, count) != 1:
        stride += 1
    return (np.arange(count, dtype=np.int64) * stride) % max(count, 1)


@numba.njit(cache=True, nogil=True, parallel=True)
def _splat(
    hi_vertices, hi_faces, vertex_face, vertex_dist, face_chart, matrix, origin, height, width,
    depth, out_face, out_triangle, band_rows, band_order, chunks,
):  # fmt: skip
    """Draw the triangles; each texel keeps the nearest one's index (``out_triangle``) and the
    low-res face it went through (``out_face``). Its attributes come after, from those two
    (:func:`_texel_values`): interpolating them here wrote every overdrawn texel's channels
    into a (size, size, k) float image (100 MB at 2048 px, most of it freshly faulted pages)."""
    m = hi_faces.shape[0]
    through = np.empty((m, 3), np.int32)  # int32: these are written and read once, by the GB
    first_row = np.empty((m, 3), np.int32)
    last_row = np.empty((m, 3), np.int32)
    _splat_rows(hi_vertices, hi_faces, vertex_face, face_chart, matrix, origin, height, width,
                through, first_row, last_row)  # fmt: skip
    bands = (height + band_rows - 1) // band_rows
    start, draws = _band_lists(through, first_row, last_row, bands, band_rows, chunks)
    # Each band's rows belong to one thread: the depth test needs no locks, and each band sees
    # its triangles in the sequential order, so the image is the same on any core count.
    for j in numba.prange(bands):
        band = band_order[j]
        px = np.empty(3)
        py = np.empty(3)
        top = band * band_rows
        bottom = min(top + band_rows, height) - 1
        for d in range(start[band], start[band + 1]):
            t, k = np.int64(draws[d]) // 3, np.int64(draws[d]) % 3
            fk = through[t, k]
            i0, i1, i2 = hi_faces[t, 0], hi_faces[t, 1], hi_faces[t, 2]
            _project(hi_vertices, hi_faces, t, fk, matrix, origin, height, width, px, py)
            det = (px[1] - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (py[1] - py[0])
            if det == 0.0:
                continue
            inv = 1.0 / det
            col0 = max(int(np.floor(min(px[0], px[1], px[2]) - 0.5)), 0)
            col1 = min(int(np.ceil(max(px[0], px[1], px[2]) - 0.5)), width - 1)
            row0 = max(first_row[t, k], top)
            row1 = min(last_row[t, k], bottom)
            for row in range(row0, row1 + 1):
                y = row + 0.5
                for col in range(col0, col1 + 1):
                    x = col + 0.5
                    w1 = ((x - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (y - py[0])) * inv
                    w2 = ((px[1] - px[0]) * (y - py[0]) - (x - px[0]) * (py[1] - py[0])) * inv
                    w0 = 1.0 - w1 - w2
                    if w0 < -1e-6 or w1 < -1e-6 or w2 < -1e-6:
                        continue
                    z = w0 * vertex_dist[i0] + w1 * vertex_dist[i1] + w2 * vertex_dist[i2]
                    if z >= depth[row, col]:
                        continue
                    depth[row, col] = z
                    out_face[row, col] = fk
                    out_triangle[row, col] = t


@numba.njit(cache=True, nogil=True, parallel=True)
def _texel_values(hi_vertices, hi_faces, attributes, matrix, origin, height, width, flat,
                  out_face, out_triangle, out):  # fmt: skip
    """Attributes (k, c) of the texels ``flat`` (k,): their triangle's, interpolated at the
    texel centre through the face it was drawn through, by the very arithmetic of _splat's
    depth test (the same values it would have stored)."""
    for i in numba.prange(flat.shape[0]):
        px = np.empty(3)
        py = np.empty(3)
        row, col = flat[i] // width, flat[i] % width
        t, fk = np.int64(out_triangle[row, col]), np.int64(out_face[row, col])
        i0, i1, i2 = hi_faces[t, 0], hi_faces[t, 1], hi_faces[t, 2]
        _project(hi_vertices, hi_faces, t, fk, matrix, origin, height, width, px, py)
        det = (px[1] - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (py[1] - py[0])
        inv = 1.0 / det
        y = row + 0.5
        x = col + 0.5
        w1 = ((x - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (y - py[0])) * inv
        w2 = ((px[1] - px[0]) * (y - py[0]) - (x - px[0]) * (py[1] - py[0])) * inv
        w0 = 1.0 - w1 - w2
        for c in range(attributes.shape[1]):
            out[i, c] = w0 * attributes[i0, c] + w1 * attributes[i1, c] + w2 * attributes[i2, c]


def splat(
    hi_vertices: np.ndarray,
    hi_faces: np.ndarray,
    attributes: np.ndarray,
    vertex_face: np.ndarray,
    vertex_dist: np.ndarray,
    lo_vertices: np.ndarray,
    lo_faces: np.ndarray,
    lo_uvs: np.ndarray,
    face_chart: np.ndarray,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the high-res mesh into the low-res atlas.

    hi_vertices (N, 3), hi_faces (M, 3), attributes (N, k) float, vertex_face (N,) and
    vertex_dist (N,) from :func:`closest_faces`, lo_* the UV-mapped low-res mesh, face_chart
    (m,) chart of each low-res face. Returns values (size, size, k) float32 and face
    (size, size) int32: the low-res face each texel was placed through, -1 where empty.
    """
    texels, flat, face = splat_texels(
        hi_vertices, hi_faces, attributes, vertex_face, vertex_dist, lo_vertices, lo_faces,
        lo_uvs, face_chart, size,
    )  # fmt: skip
    values = np.zeros((size * size, texels.shape[1]), dtype=np.float32)
    values[flat] = texels
    face_map = np.full(size * size, -1, dtype=np.int32)
    face_map[flat] = face
    return values.reshape(size, size, -1), face_map.reshape(size, size)


def splat_texels(
    hi_vertices: np.ndarray,
    hi_faces: np.ndarray,
    attributes: np.ndarray,
    vertex_face: np.ndarray,
    vertex_dist: np.ndarray,
    lo_vertices: np.ndarray,
    lo_faces: np.ndarray,
    lo_uvs: np.ndarray,
    face_chart: np.ndarray,
    size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`splat`, the drawn texels only: values (k, c) float32 of the texels ``flat`` (k,)
    int64 (row-major indices, ascending) and face (k,) int32, the low-res face each went
    through. No (size, size, c) image is made."""
    matrix, origin = face_uv_maps(lo_vertices, lo_faces, lo_uvs)
    # uv = origin + M (p - corner0)  ->  uv = (origin - M corner0) + M p: one affine per face.
    origin = origin - np.einsum(
        "fij,fj->fi", matrix, lo_vertices[lo_faces[:, 0]].astype(np.float64)
    )
    hi_vertices = np.ascontiguousarray(hi_vertices, dtype=np.float64)
    hi_faces = np.ascontiguousarray(hi_faces, dtype=np.int64)
    depth = np.full((size, size), np.inf, dtype=np.float32)
    out_face = np.full((size, size), -1, dtype=np.int32)
    out_triangle = np.empty((size, size), dtype=np.int32)  # read only where out_face >= 0
    _splat(
        hi_vertices, hi_faces, vertex_face.astype(np.int64), vertex_dist.astype(np.float32),
        face_chart.astype(np.int64), matrix, origin, size, size, depth, out_face, out_triangle,
        SPLAT_BAND_ROWS, spread_order(-(-size // SPLAT_BAND_ROWS)), chunk_count(len(hi_faces)),
    )  # fmt: skip
    flat = np.flatnonzero(out_face.reshape(-1) >= 0)  # 1-D indices: cheaper than 2-D
    texels = np.empty((len(flat), attributes.shape[1]), dtype=np.float32)
    _texel_values(
        hi_vertices, hi_faces, np.ascontiguousarray(attributes, dtype=np.float32), matrix,
        origin, size, size, flat, out_face, out_triangle, texels,
    )  # fmt: skip
    return texels, flat, out_face.reshape(-1)[flat]
