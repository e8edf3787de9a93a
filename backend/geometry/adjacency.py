"""Which faces touch which: connected pieces and the face pairs across two-face edges.

Shared by clean (floaters, winding), uv (chart growing), quality (piece count) and the pipeline.
"""

from __future__ import annotations

import numba
import numpy as np


def face_components(faces: np.ndarray, n_vertices: int) -> tuple[int, np.ndarray]:
    """Pieces connected through shared vertices: (count, (m,) label of each face), pieces
    numbered in the order of their lowest vertex (as scipy's connected_components numbers
    them)."""
    if len(faces) == 0:
        return 0, np.zeros(0, dtype=np.int64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    # Each face joins its corners: edges (0, 1) and (1, 2) connect all three.
    root = _union_faces(n_vertices, faces, chunk_count(2 * len(faces)))
    return _rank_roots(root, faces)


@numba.njit(cache=True, nogil=True, parallel=True)
def _rank_roots(root, faces):
    # Label = rank of the face's root among the roots faces use (np.unique's inverse, without
    # its sort): roots are their pieces' lowest vertices, so ranks number pieces by them.
    m = faces.shape[0]
    used = np.zeros(root.shape[0], np.bool_)
    for f in numba.prange(m):
        used[root[faces[f, 0]]] = True  # racing writes all store True
    rank = np.empty(root.shape[0], np.int64)
    count = 0
    for v in range(root.shape[0]):
        rank[v] = count
        count += used[v]
    labels = np.empty(m, np.int64)
    for f in numba.prange(m):
        labels[f] = rank[root[faces[f, 0]]]
    return count, labels


def component_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) int64 component of each of ``n`` elements joined along the pairs (a[i], b[i]),
    numbered in the order of each component's lowest element (scipy's connected_components
    numbering, without importing scipy: ~0.2 s of a fresh process's start)."""
    a, b = np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64)
    root = union_find(n, a, b, chunk_count(len(a)))
    is_root = root == np.arange(n)
    return (np.cumsum(is_root) - 1)[root]


@numba.njit(cache=True, nogil=True, parallel=True)
def union_find(n, a, b, chunks=1):
    """(n,) a root per element, joined along the pairs (a[i], b[i]): path-halving union-find,
    a tenth of the time of a sparse-graph components call on 800k faces, the pairs in
    ``chunks`` pieces on all cores. Each root is its component's lowest element."""
    parent = np.arange(n)
    for c in numba.prange(chunks):
        for i in range(c * a.shape[0] // chunks, (c + 1) * a.shape[0] // chunks):
            _link(parent, a[i], b[i])
    _settle(parent)
    lost = _split_pairs(parent, a.reshape(-1, 1), b.reshape(-1, 1), chunks)
    for c in lost:  # links a race lost: those chunks again, one at a time
        for i in range(c * a.shape[0] // chunks, (c + 1) * a.shape[0] // chunks):
            _link(parent, a[i], b[i])
    if len(lost):
        _settle(parent)
    return parent


@numba.njit(cache=True, nogil=True, parallel=True)
def _union_faces(n, faces, chunks):
    # union_find of each face's corner pairs (0, 1) and (1, 2), faces in ``chunks`` pieces (a
    # piece's faces are near each other: few links race), without the pair arrays.
    parent = np.arange(n)
    m = faces.shape[0]
    for c in numba.prange(chunks):
        for f in range(c * m // chunks, (c + 1) * m // chunks):
            _link(parent, faces[f, 0], faces[f, 1])
            _link(parent, faces[f, 1], faces[f, 2])
    _settle(parent)
    lost = _split_pairs(parent, faces[:, :2], faces[:, 1:], chunks)
    for c in lost:
        for f in range(c * m // chunks, (c + 1) * m // chunks):
            _link(parent, faces[f, 0], faces[f, 1])
            _link(parent, faces[f, 1], faces[f, 2])
    if len(lost):
        _settle(parent)
    return parent


@numba.njit(cache=True, nogil=True, inline="always")
def _link(parent, x, y):
    # Find both roots (path halving), hook the higher under the lower. Threads race: a write
    # may be lost, but every link points lower and within the true piece (an ancestor was
    # reached through pairs), so the forest only ever splits a piece; _split_pairs finds that.
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    while parent[y] != y:
        parent[y] = parent[parent[y]]
        y = parent[y]
    if x != y:
        parent[max(x, y)] = min(x, y)


@numba.njit(cache=True, nogil=True)
def _settle(parent):
    # Links only ever point to a lower index, so one pass in increasing order leaves every
    # element on its root (its parent, lower, already is).
    for i in range(parent.shape[0]):
        parent[i] = parent[parent[i]]


@numba.njit(cache=True, nogil=True, parallel=True)
def _split_pairs(parent, a, b, chunks):
    # The chunks (ascending) holding a pair whose ends settled on different roots: a racing
    # link was lost there. a, b: (p, k) pairs by rows, the rows in ``chunks`` pieces.
    split = np.zeros(chunks, np.bool_)
    p = a.shape[0]
    for c in numba.prange(chunks):
        for i in range(c * p // chunks, (c + 1) * p // chunks):
            for k in range(a.shape[1]):
                split[c] |= parent[a[i, k]] != parent[b[i, k]]
    return np.flatnonzero(split)


def manifold_face_pairs(
    faces: np.ndarray, n_vertices: int, around: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces sharing an edge used by exactly two faces.

    Returns a (p,), b (p,) face indices (a < b) and disagree (p,) bool: both faces run the
    shared edge the same way, so their windings are inconsistent. Ordered by (a, a's edge).
    ``around``: :func:`vertex_faces` of ``faces``, when the caller has it.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    start, listed = around or vertex_faces(faces, n_vertices)
    other, same = _edge_partners(faces, start, listed)
    return _compact_pairs(other, same, chunk_count(len(other)))


def vertex_faces(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Faces around each vertex: (start (n + 1,), faces (3m,)), vertex v's faces ascending in
    ``faces[start[v]:start[v + 1]]`` (a face repeating v listed once per corner)."""
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    shift = max(0, int(n_vertices).bit_length() - _BUCKET_BITS)
    return _vertex_faces(faces, n_vertices, shift, chunk_count(3 * len(faces)))


# Work split into a fixed number of pieces by size, never by thread count: the answers are
# the same for any thread count anyway (every step is a stable, exact one), and so is the work.
_CHUNK = 1 << 16
_MAX_CHUNKS = 256
_BUCKET_BITS = 9  # vertex ranges (buckets) of the parallel counting sort: up to 512


def chunk_count(n: int) -> int:
    """How many pieces to split ``n`` items of parallel work into (by size alone)."""
    return max(1, min(_MAX_CHUNKS, n // _CHUNK))


@numba.njit(cache=True, nogil=True)
def chunk_offsets(counts):
    """Each bucket's start (buckets + 1,) from per-chunk counts (chunks, buckets), which become
    each chunk's first write position in that bucket: bucket by bucket, chunk by chunk, so the
    chunks' items stay in their order inside a bucket."""
    chunks, buckets = counts.shape
    bucket_start = np.empty(buckets + 1, np.int64)
    total = 0
    for bucket in range(buckets):
        bucket_start[bucket] = total
        for c in range(chunks):
            count = counts[c, bucket]
            counts[c, bucket] = total
            total += count
    bucket_start[buckets] = total
    return bucket_start


@numba.njit(cache=True, nogil=True, parallel=True)
def bucket_scatter(keys, buckets, shift, chunks):
    """Indices (n,) of ``keys`` (n,) ordered by range ``key >> shift`` (< ``buckets``), index
    order kept inside a range, and each range's start (buckets + 1,): a stable counting scatter,
    per-chunk counts then writes, both passes over ``chunks`` pieces in parallel."""
    n = keys.shape[0]
    counts = np.zeros((chunks, buckets), np.int64)
    for c in numba.prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            counts[c, keys[i] >> shift] += 1
    bucket_start = chunk_offsets(counts)
    by_bucket = np.empty(n, np.int64)
    for c in numba.prange(chunks):
        fill = counts[c]
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            bucket = keys[i] >> shift
            by_bucket[fill[bucket]] = i
            fill[bucket] += 1
    return by_bucket, bucket_start


@numba.njit(cache=True, nogil=True, parallel=True)
def _vertex_faces(faces, n_vertices, shift, chunks):
    # A counting sort of the 3m corners by vertex, in two stable passes that both run in
    # parallel: corners into vertex ranges (per-chunk counts, then a scatter), then each range
    # sorted by vertex on its own (its counts fit in cache).
    flat = faces.reshape(-1)
    corners = flat.shape[0]
    buckets = (n_vertices >> shift) + 1
    by_bucket, bucket_start = bucket_scatter(flat, buckets, shift, chunks)
    start = np.empty(n_vertices + 1, np.int64)
    around = np.empty(corners, np.int64)
    for bucket in numba.prange(buckets):
        low = bucket << shift
        high = min(n_vertices, (bucket + 1) << shift)
        if low >= high:
            continue
        fill = np.zeros(high - low + 1, np.int64)
        for j in range(bucket_start[bucket], bucket_start[bucket + 1]):
            fill[flat[by_bucket[j]] - low + 1] += 1
        fill[0] = bucket_start[bucket]
        for v in range(high - low):
            fill[v + 1] += fill[v]
        for v in range(high - low):
            start[low + v] = fill[v]
        for j in range(bucket_start[bucket], bucket_start[bucket + 1]):
            corner = by_bucket[j]
            v = flat[corner] - low
            around[fill[v]] = corner // 3
            fill[v] += 1
    start[n_vertices] = corners
    return start, around


@numba.njit(cache=True, nogil=True, parallel=True)
def _edge_partners(faces, start, around):
    # Per face edge (3f + k): the one other face using that edge, or -1 (none, or several);
    # same: it runs the edge the same way. Each edge looks for its other faces among those of
    # its first vertex: O(m * valence), no sort of the 3m edge keys. Faces are independent.
    m = faces.shape[0]
    other = np.empty(3 * m, np.int64)
    same_way = np.empty(3 * m, np.bool_)
    for f in numba.prange(m):
        for k in range(3):
            u = faces[f, k]
            w = faces[f, 0] if k == 2 else faces[f, k + 1]
            users, found, same = 0, -1, False
            if u != w:
                first = start[u]
                for j in range(first, start[u + 1]):
                    g = around[j]
                    if g == f or (j > first and around[j - 1] == g):
                        continue  # this face, or a face listed twice (a repeated vertex)
                    a, b, c = faces[g, 0], faces[g, 1], faces[g, 2]
                    # The corners after and before g's first u (g holds u: it is listed here).
                    if a == u:
                        after, before = b, c
                    elif b == u:
                        after, before = c, a
                    else:
                        after, before = a, b
                    if after == w:
                        users += 1
                        found, same = g, True
                    elif before == w:
                        users += 1
                        found, same = g, False
            if users != 1:
                found, same = -1, False
            other[3 * f + k] = found
            same_way[3 * f + k] = same
    return other, same_way


@numba.njit(cache=True, nogil=True, parallel=True)
def _compact_pairs(other, same_way, chunks):
    # Keep each pair once, from its lower face, in edge order: per-chunk counts, then writes.
    n = other.shape[0]
    counts = np.zeros(chunks + 1, np.int64)
    for c in numba.prange(chunks):
        kept = 0
        for e in range(c * n // chunks, (c + 1) * n // chunks):
            if other[e] > e // 3:
                kept += 1
        counts[c + 1] = kept
    for c in range(chunks):
        counts[c + 1] += counts[c]
    # At most 3m/2 + 1 pairs: a mesh whose edges have two faces at most has fewer.
    size = min(counts[chunks], n // 2 + 1)
    out_a = np.empty(size, np.int64)
    out_b = np.empty(size, np.int64)
    out_same = np.empty(size, np.bool_)
    for c in numba.prange(chunks):
        p = counts[c]
        for e in range(c * n // chunks, (c + 1) * n // chunks):
            if other[e] > e // 3:
                if p < size:
                    out_a[p], out_b[p], out_same[p] = e // 3, other[e], same_way[e]
                p += 1
    return out_a, out_b, out_same
