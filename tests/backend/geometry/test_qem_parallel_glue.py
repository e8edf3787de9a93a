"""qem's parallel set-up and glue against their serial formulations, bit for bit: the plane
quadrics (a per-vertex gather in place of a scatter over the faces), and whole decimations on
one and two threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backend.geometry import qem, tolerances
from backend.geometry.edge_collapse import build_refs
from backend.geometry.quadrics import add_plane


@numba.njit(cache=False)
def _scatter_quadrics(pos, faces, boundary_weight):
    # The serial formulation prepare_quadrics replaced: face planes scattered to the corners in
    # face order, then each open edge's perpendicular plane to both ends, by face and corner.
    n, m = pos.shape[0], faces.shape[0]
    quadrics = np.zeros((n, 10))
    border = np.zeros(n, np.bool_)
    normals = np.zeros((m, 3))
    for f in range(m):
        p0, p1, p2 = pos[faces[f, 0]], pos[faces[f, 1]], pos[faces[f, 2]]
        e1x, e1y, e1z = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
        e2x, e2y, e2z = p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        length = np.sqrt(nx * nx + ny * ny + nz * nz)
        if length == 0.0:
            continue
        nx, ny, nz = nx / length, ny / length, nz / length
        normals[f, 0], normals[f, 1], normals[f, 2] = nx, ny, nz
        d = -(nx * p0[0] + ny * p0[1] + nz * p0[2])
        for k in range(3):
            add_plane(quadrics, faces[f, k], nx, ny, nz, d, 0.5 * length)
    refs, vstart, vcount, _ = build_refs(faces, np.ones(m, np.bool_), n, 0)
    for f in range(m):
        for k in range(3):
            a, b = faces[f, k], faces[f, (k + 1) % 3]
            shared = False
            for j in range(vstart[b], vstart[b] + vcount[b]):
                g = refs[j]
                if g != f and (faces[g, 0] == a or faces[g, 1] == a or faces[g, 2] == a):
                    shared = True
            if shared:
                continue
            border[a] = border[b] = True
            ex, ey, ez = pos[b, 0] - pos[a, 0], pos[b, 1] - pos[a, 1], pos[b, 2] - pos[a, 2]
            sx = ey * normals[f, 2] - ez * normals[f, 1]
            sy = ez * normals[f, 0] - ex * normals[f, 2]
            sz = ex * normals[f, 1] - ey * normals[f, 0]
            length = np.sqrt(sx * sx + sy * sy + sz * sz)
            if length == 0.0:
                continue
            sx, sy, sz = sx / length, sy / length, sz / length
            d = -(sx * pos[a, 0] + sy * pos[a, 1] + sz * pos[a, 2])
            weight = boundary_weight * (ex * ex + ey * ey + ez * ez)
            add_plane(quadrics, a, sx, sy, sz, d, weight)
            add_plane(quadrics, b, sx, sy, sz, d, weight)
    return quadrics, border


def _rough_mesh(blob_mesh) -> tuple[np.ndarray, np.ndarray]:
    """The blob with holes, faces with a repeated corner, a fin (an edge of three faces), an
    unused vertex and a NaN-free but tilted frame: every case the border rule meets."""
    vertices, faces = blob_mesh
    rng = np.random.default_rng(11)
    pos = vertices.astype(np.float64) @ np.array([[0.8, 0.6, 0], [-0.6, 0.8, 0], [0, 0, 1]])
    kept = faces[rng.random(len(faces)) < 0.97].astype(np.int64)
    degenerate = kept[:40].copy()
    degenerate[:20, 1] = degenerate[:20, 0]  # (a, a, c)
    degenerate[20:, 2] = degenerate[20:, 1]  # (a, b, b)
    fin = np.array([[kept[50, 0], kept[50, 1], len(pos)]])  # a third face on one edge
    pos = np.vstack([pos, pos[kept[50, 2]] + 0.01, [[5.0, 5.0, 5.0]]])  # + an unused vertex
    return pos, np.vstack([kept, degenerate, fin])


@pytest.mark.parametrize("threads", [1, 2])
def test_gathered_quadrics_match_the_face_scatter_bit_for_bit(blob_mesh, threads):
    pos, faces = _rough_mesh(blob_mesh)
    expected = _scatter_quadrics(pos, faces, tolerances.BOUNDARY_WEIGHT)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        quadrics, border = qem.prepare_quadrics(pos, faces, tolerances.BOUNDARY_WEIGHT)
    finally:
        numba.set_num_threads(before)
    assert border.sum() > 1000 and not border[-1]  # the holes' rims, not the lone vertex
    np.testing.assert_array_equal(border, expected[1])
    assert quadrics.tobytes() == expected[0].tobytes()
