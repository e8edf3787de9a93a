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


def _on_threads(threads: int, function, *args):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        return function(*args)
    finally:
        numba.set_num_threads(before)


def _slab_layout_reference(pos, faces, face_alive, parts, shift):
    # _sweep_parts' numpy formulation: live faces, axis centroids, quantile cuts, a stable
    # argsort by slab, the per-slab counts and the serial interior loop.
    from backend.geometry.bounds import extent

    alive = np.flatnonzero(face_alive)
    live = faces[alive]
    coordinate = pos[:, int(np.argmax(extent(pos)))]
    centroid = coordinate[live[:, 0]] + coordinate[live[:, 1]] + coordinate[live[:, 2]]
    cuts = np.quantile(centroid, (np.arange(1, parts + (1 if shift else 0)) - shift) / parts)
    part = np.searchsorted(cuts, centroid, side="right").astype(np.int64)
    order = alive[np.argsort(part.astype(np.int16), kind="stable")]
    sizes = np.bincount(part, minlength=len(cuts) + 1)
    low = np.full(len(pos), np.iinfo(np.int64).max)
    high = np.full(len(pos), -1)
    np.minimum.at(low, live.ravel(), np.repeat(part, 3))
    np.maximum.at(high, live.ravel(), np.repeat(part, 3))
    interior = np.where(low == high, high, -1)
    return centroid, part, order, np.concatenate([[0], np.cumsum(sizes)]), interior


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_slab_layout_kernels_match_the_numpy_formulation(blob_mesh, threads, shift):
    from backend.geometry.adjacency import chunk_count

    vertices, faces = blob_mesh
    rng = np.random.default_rng(5)
    pos = vertices.astype(np.float64)
    faces = faces.astype(np.int64)
    face_alive = rng.random(len(faces)) < 0.6  # and some vertices in no live face
    centroid, part, order, offsets, interior = _slab_layout_reference(pos, faces, face_alive, 7,
                                                                      shift)  # fmt: skip
    chunks = 5  # uneven pieces: the answers must not depend on them

    def ours():
        axis = int(np.argmax(qem._extent(pos, chunks)))
        alive, sums = qem._live_centroids(face_alive, faces, pos, axis, chunks)
        levels = (np.arange(1, 7 + (1 if shift else 0)) - shift) / 7
        slab = qem._slab_of(sums, np.quantile(sums, levels))
        return alive, sums, slab, *qem._slab_layout(alive, slab, faces, len(pos), len(levels) + 1,
                                                     chunk_count(len(faces)))  # fmt: skip

    alive, sums, slab, our_order, our_offsets, our_interior = _on_threads(threads, ours)
    np.testing.assert_array_equal(alive, np.flatnonzero(face_alive))
    assert sums.tobytes() == centroid.tobytes()
    np.testing.assert_array_equal(slab, part)
    np.testing.assert_array_equal(our_order, order)
    np.testing.assert_array_equal(our_offsets, offsets)
    np.testing.assert_array_equal(our_interior, interior)
    assert (interior == -1).sum() > 0 and (interior >= 0).sum() > 0


def test_slab_of_sorts_nan_and_ties_as_searchsorted():
    cuts = np.array([-1.0, 0.0, 0.0, 2.5])
    values = np.array([-2.0, -1.0, -0.0, 0.0, 1.0, 2.5, 3.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(qem._slab_of(values, cuts),
                                  np.searchsorted(cuts, values, side="right"))  # fmt: skip


def test_extent_is_the_bounds_extent_nan_included():
    from backend.geometry.bounds import extent

    rng = np.random.default_rng(2)
    pos = rng.normal(size=(1001, 3)) * [1, 3, 2]
    assert qem._extent(pos, 7).tobytes() == extent(pos).tobytes()
    pos[500, 1] = np.nan
    np.testing.assert_array_equal(np.isnan(qem._extent(pos, 7)), np.isnan(extent(pos)))


@numba.njit(parallel=True, cache=False)
def _edge_keys_reference(faces, face_alive, pos, quadrics, border, endpoint):
    # The former kernel: every live edge's queue bucket, -1 in the unused slots.
    m = faces.shape[0]
    keys = np.full(3 * m, -1, np.int64)
    for f in numba.prange(m):
        if face_alive[f]:
            q = np.empty(10, np.float64)
            for k in range(3):
                a, b = faces[f, k], faces[f, (k + 1) % 3]
                if a < b or (border[a] and border[b]):
                    keys[3 * f + k] = qem._bucket(
                        qem.edge_cost(a, b, pos, quadrics, border, endpoint, q)
                    )
    return keys


@pytest.mark.parametrize("threads", [1, 2])
def test_the_key_histogram_picks_the_bound_the_partition_picked(blob_mesh, threads):
    pos, faces = _rough_mesh(blob_mesh)
    quadrics, border = qem.prepare_quadrics(pos, faces, tolerances.BOUNDARY_WEIGHT)
    face_alive = np.random.default_rng(1).random(len(faces)) < 0.8
    keys = _edge_keys_reference(faces, face_alive, pos, quadrics, border, False)
    keys = keys[keys >= 0]
    counts = _on_threads(threads, qem._edge_key_counts, faces, face_alive, pos, quadrics, border,
                         False, numba.get_num_threads())  # fmt: skip
    np.testing.assert_array_equal(counts, np.bincount(keys, minlength=qem.N_BUCKETS))
    below = np.cumsum(counts)
    for need in (0, 1, 17, len(keys) // 3, len(keys) - 1):
        assert int(np.searchsorted(below, need, side="right")) == np.partition(keys, need)[need]


def test_roots_and_unit_frame_match_numpy():
    rng = np.random.default_rng(4)
    parent = np.arange(5000)
    for i in rng.permutation(5000)[:4000]:  # merges into a lower index: chains, no cycles
        parent[i] = rng.integers(0, i + 1)
    squared = parent
    while not np.array_equal(squared[squared], squared):
        squared = squared[squared]
    np.testing.assert_array_equal(qem._roots(parent), squared)
    vertices = rng.normal(size=(3000, 3)).astype(np.float32)
    faces = rng.integers(0, 3000, (4000, 3)).astype(np.int32)
    centre = vertices.mean(axis=0).astype(np.float64)
    pos, copy = qem._unit_frame(vertices, centre, 1.7, faces)
    assert pos.tobytes() == ((vertices.astype(np.float64) - centre) / 1.7).tobytes()
    assert copy.dtype == np.int64 and np.array_equal(copy, faces)


def test_collapse_is_the_same_on_one_and_two_threads(blob_mesh, monkeypatch):
    """The whole decimation through the slab path (8 slabs), every output array."""
    monkeypatch.setattr(tolerances, "PARALLEL_SWEEP_FACES", 10_000)
    monkeypatch.setattr(tolerances, "PARALLEL_PART_FACES", len(blob_mesh[1]) // 8)
    one = _on_threads(1, qem.collapse, *blob_mesh, 1000)
    two = _on_threads(2, qem.collapse, *blob_mesh, 1000)
    for ours, theirs in zip(one, two, strict=True):
        assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
