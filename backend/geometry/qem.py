"""Greedy quadric-error edge collapse (Garland-Heckbert), compiled with numba.

First, sweeps in memory order collapse every edge under a rising error threshold (the bulk of a
dense marching-cubes mesh, cache-friendly, as in Fast Quadric Mesh Simplification) down to a few
times the target; then the cheapest collapse is always taken next, through a logarithmic bucket
queue (costs ordered to within 9 %, FIFO inside a bucket: a binary heap over millions of entries
spends its time in cache misses) with lazy invalidation by per-vertex stamps. Each collapse,
and the checks that refuse one that would break the surface, is edge_collapse.py's. Open
borders are pinned by heavy perpendicular plane quadrics. Placement is the quadric optimum, or
in ``endpoint`` mode one of the two vertices, so per-vertex data (incoming UVs) stays exact. On
large inputs both phases first run in parallel on slabs of the longest axis (vertices on a cut
stay put; the slab count follows the input's size, not the machine, so every machine makes the
same mesh): the sweeps down to a few times the target, then greedy rounds bounded by one cost for
every slab, the cuts moving by half a slab each round, to a little above the target; the
sequential greedy pass finishes across the cuts.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from backend.geometry import quantiles, tolerances
from backend.geometry.adjacency import (
    _BUCKET_BITS,
    _CHUNK,
    _MAX_CHUNKS,
    _vertex_faces,
    bucket_scatter,
    chunk_count,
)
from backend.geometry.bounds import extent
from backend.geometry.edge_collapse import (
    build_part_refs,
    build_refs,
    count_part_rings,
    fill_part_rings,
    try_collapse,
)
from backend.geometry.quadrics import add_plane, edge_cost

BUCKETS_PER_OCTAVE = 8  # the queue orders costs to within 2^(1/8): ~9 %
N_BUCKETS = 2048
RING_MAX = 8192  # faces around one vertex the collapse handles (its ring buffers' size)
# A sweep or greedy round that removes less than this share of the faces has stalled: what is
# left is held by the surface's topology (handles, thin walls), and more passes only re-try it.
STALL_FRACTION = 0.002


@numba.njit(cache=True, inline="always")
def _bucket(cost):
    """Queue bucket of a cost: logarithmic, so tiny and large errors are both well ordered."""
    key = int((np.log2(max(cost, 1e-33)) + 110.0) * BUCKETS_PER_OCTAVE)
    return min(max(key, 0), N_BUCKETS - 1)


@numba.njit(cache=True)
def _queue_grow(queue, nxt):
    """The queue arrays at twice their size (the first ``len(nxt)`` entries kept)."""
    bigger = np.empty((2 * queue.shape[0], 4), np.int64)
    bigger[: queue.shape[0]] = queue
    grown = np.empty(2 * nxt.shape[0], np.int64)
    grown[: nxt.shape[0]] = nxt
    return bigger, grown


@numba.njit(cache=True, inline="always")
def _queue_push(queue, head, tail, nxt, count, key, u, v, stu, stv):
    """Append an edge to its bucket (FIFO within a bucket); returns the grown queue arrays.
    Inlined, with the rare growth out of line: a call per push cost an atomic reference count
    per array argument."""
    if count == nxt.shape[0]:
        queue, nxt = _queue_grow(queue, nxt)
    queue[count, 0], queue[count, 1], queue[count, 2], queue[count, 3] = u, v, stu, stv
    nxt[count] = -1
    if tail[key] >= 0:
        nxt[tail[key]] = count
    else:
        head[key] = count
    tail[key] = count
    return queue, nxt


@numba.njit(cache=True)
def _room(refs, vstart, vcount, top, faces, face_alive, face_list):
    """Compact the ring lists from ``face_list``'s live faces when fewer than a worst-case
    collapse's entries are free. Done here, over this caller's faces only, so the rebuild in
    apply_collapse (over every face) never runs while other threads change their parts.
    Callers check ``top + 2 * RING_MAX > len(refs)`` first."""
    total = count_part_rings(faces, face_list, face_alive, vcount, vstart)
    if total + 4 * RING_MAX > refs.shape[0]:
        refs = np.empty(2 * (total + 4 * RING_MAX), np.int64)
    fill_part_rings(faces, face_list, face_alive, refs, vstart.copy())
    return refs, total


@numba.njit(cache=True, _nrt=False, forceinline=True)
def _face_error(f, pos, faces, quadrics, border, endpoint, q):
    """The cheapest of face ``f``'s three edge costs (no reference counts: see edge_cost)."""
    best = np.inf
    for k in range(3):
        c = edge_cost(faces[f, k], faces[f, (k + 1) % 3], pos, quadrics, border, endpoint, q)
        best = min(best, c)
    return best


@numba.njit(cache=True, nogil=True)
def _sweeps(face_list, part, interior, pos, faces, quadrics, border, endpoint, flip_cos,
            min_quality, face_alive, vertex_alive, version, parent, refs, vstart, vcount, top,
            alive_faces, stop_faces, sweep_quantile, mark, stamp, touched):  # fmt: skip
    """Phase 1 over ``face_list``: sweeps in memory order under a rising error threshold
    (cache-friendly, as in Fast Quadric Mesh Simplification) take the bulk of the near-zero
    collapses. With ``part`` >= 0 only edges between vertices ``interior`` to that part move,
    so two parts can be swept at once. ``mark`` (n,) holds no value above ``stamp`` (1,), which
    only rises (so it is never zeroed: the caller's, reused between parts); ``touched`` (m,) is
    zero on ``face_list``. Returns (alive faces, refs, top)."""
    ring_u = np.empty(RING_MAX, np.int64)
    ring_v = np.empty(RING_MAX, np.int64)
    q = np.empty(10, np.float64)
    error = np.empty(face_list.shape[0])  # by position in the list: the part's size, not m
    for i in range(face_list.shape[0]):
        error[i] = _face_error(face_list[i], pos, faces, quadrics, border, endpoint, q)
    stride = max(face_list.shape[0] // 8192, 1)
    for sweep in range(1, 40):
        if alive_faces <= stop_faces:
            break
        at_start = alive_faces
        sample = error[::stride][face_alive[face_list[::stride]]]
        if sample.shape[0] == 0:
            break
        threshold = np.quantile(sample, sweep_quantile)
        for i in range(face_list.shape[0]):
            f = face_list[i]
            if alive_faces <= stop_faces:
                break
            if not face_alive[f] or touched[f] == sweep or error[i] > threshold:
                continue
            for k in range(3):
                a, b = faces[f, k], faces[f, (k + 1) % 3]
                if part >= 0 and (interior[a] != part or interior[b] != part):
                    continue
                if edge_cost(a, b, pos, quadrics, border, endpoint, q) > threshold:
                    continue
                if top + 2 * RING_MAX > refs.shape[0]:  # a call per try cost refcounts
                    refs, top = _room(refs, vstart, vcount, top, faces, face_alive, face_list)
                kept, removed, top = try_collapse(
                    a, b, pos, faces, quadrics, border, endpoint, flip_cos, min_quality,
                    face_alive, vertex_alive, version, parent, mark, stamp, ring_u, ring_v,
                    refs, vstart, vcount, top, q,
                )  # fmt: skip
                if kept < 0:
                    continue
                alive_faces -= removed
                for i in range(vstart[kept], vstart[kept] + vcount[kept]):
                    touched[refs[i]] = sweep  # left alone until this sweep ends
                break
        for i in range(face_list.shape[0]):  # re-measure each changed face once, not per collapse
            f = face_list[i]
            if face_alive[f] and touched[f] == sweep:
                error[i] = _face_error(f, pos, faces, quadrics, border, endpoint, q)
        if at_start - alive_faces < STALL_FRACTION * at_start:
            break  # the cheap edges left are refused (topology): the greedy phase takes over
    return alive_faces, refs, top


@numba.njit(cache=True, nogil=True)
def _greedy(face_list, part, interior, pos, faces, quadrics, border, endpoint, flip_cos,
            min_quality, face_alive, vertex_alive, version, parent, refs, vstart, vcount, top,
            alive_faces, target_faces, max_key, mark, stamp):  # fmt: skip
    """Phase 2 over ``face_list``: the cheapest collapse first, through the bucket queue, until
    ``target_faces`` of them are alive or the cheapest edge left is above bucket ``max_key``.
    With ``part`` >= 0 only edges between vertices ``interior`` to that part move, as in
    :func:`_sweeps`, with ``mark`` and ``stamp`` as there. Returns (alive faces, refs, top)."""
    ring_u = np.empty(RING_MAX, np.int64)
    ring_v = np.empty(RING_MAX, np.int64)
    q = np.empty(10, np.float64)
    queue = np.empty((3 * face_list.shape[0] + 64, 4), np.int64)
    nxt = np.empty(3 * face_list.shape[0] + 64, np.int64)
    for _round in range(4):  # a round ends when the queue runs dry; then edges are re-queued
        head = np.full(N_BUCKETS, -1, np.int64)
        tail = np.full(N_BUCKETS, -1, np.int64)
        count = 0
        lowest = N_BUCKETS
        for f in face_list:
            if not face_alive[f]:
                continue
            for k in range(3):
                a, b = faces[f, k], faces[f, (k + 1) % 3]
                if part >= 0 and (interior[a] != part or interior[b] != part):
                    continue
                if a < b or (border[a] and border[b]):
                    key = _bucket(edge_cost(a, b, pos, quadrics, border, endpoint, q))
                    queue, nxt = _queue_push(queue, head, tail, nxt, count, key, a, b,
                                             version[a], version[b])  # fmt: skip
                    count += 1
                    lowest = min(lowest, key)
        collapsed = 0
        while alive_faces > target_faces:
            while lowest < N_BUCKETS and head[lowest] < 0:
                lowest += 1
            if lowest == N_BUCKETS or lowest > max_key:
                break
            entry = head[lowest]
            head[lowest] = nxt[entry]
            if head[lowest] < 0:
                tail[lowest] = -1
            u, v, vu, vv = queue[entry, 0], queue[entry, 1], queue[entry, 2], queue[entry, 3]
            if not (vertex_alive[u] and vertex_alive[v]) or version[u] != vu or version[v] != vv:
                continue
            if top + 2 * RING_MAX > refs.shape[0]:
                refs, top = _room(refs, vstart, vcount, top, faces, face_alive, face_list)
            kept, removed, top = try_collapse(
                u, v, pos, faces, quadrics, border, endpoint, flip_cos, min_quality,
                face_alive, vertex_alive, version, parent, mark, stamp, ring_u, ring_v,
                refs, vstart, vcount, top, q,
            )  # fmt: skip
            if kept < 0:
                continue
            alive_faces -= removed
            stamp[0] += 1
            for i in range(vstart[kept], vstart[kept] + vcount[kept]):
                f = refs[i]
                for k in range(3):
                    w = faces[f, k]
                    if part >= 0 and interior[w] != part:
                        continue
                    if w != kept and mark[w] != stamp[0]:
                        mark[w] = stamp[0]
                        key = _bucket(edge_cost(kept, w, pos, quadrics, border, endpoint, q))
                        queue, nxt = _queue_push(queue, head, tail, nxt, count, key, kept, w,
                                                 version[kept], version[w])  # fmt: skip
                        count += 1
                        lowest = min(lowest, key)
            collapsed += 1
        if alive_faces <= target_faces or collapsed < STALL_FRACTION * alive_faces:
            break  # another round would re-try the same refused edges
        if lowest <= N_BUCKETS - 1 and lowest > max_key:
            break  # reached the cost bound: the caller decides what comes next
    return alive_faces, refs, top


@numba.njit(cache=True, parallel=True)
def _parallel_sweeps(face_lists, offsets, interior, stop_faces, greedy_faces, pos, faces,
                     quadrics, border, endpoint, flip_cos, min_quality, face_alive, vertex_alive,
                     version, parent, sweep_quantile, max_key, scratch):  # fmt: skip
    """Phases 1 and then 2 on every part at once (``offsets`` (k + 1,) into ``face_lists``),
    down to ``greedy_faces`` (k,) per part. Each part gets ring lists of its own faces only
    (its interior vertices' rings are all it reads or writes), so memory stays ~ one copy.
    ``scratch`` is :func:`thread_scratch`'s: each thread's vertex- and face-sized arrays,
    zeroed here for every part rather than allocated (fresh pages cost 0.3 s a decimation)."""
    for p in numba.prange(offsets.shape[0] - 1):
        part_faces = face_lists[offsets[p] : offsets[p + 1]]
        if part_faces.shape[0] == 0:
            continue
        thread = numba.get_thread_id()
        vcount, vstart, mark = scratch.vcount[thread], scratch.vstart[thread], scratch.mark[thread]
        stamp = scratch.stamp[thread : thread + 1]  # rises across parts: mark is never zeroed
        alive = 0
        for f in part_faces:
            if face_alive[f]:
                alive += 1
        refs, top = build_part_refs(
            faces, part_faces, face_alive, vcount, vstart, scratch.fill[thread],
            9 * part_faces.shape[0] + 1024,
        )  # fmt: skip
        if alive > stop_faces[p]:
            touched = scratch.touched[thread]
            for f in part_faces:  # the only faces this part's sweeps read or mark
                touched[f] = 0
            alive, refs, top = _sweeps(
                part_faces, p, interior, pos, faces, quadrics, border, endpoint, flip_cos,
                min_quality, face_alive, vertex_alive, version, parent, refs, vstart, vcount,
                top, alive, stop_faces[p], sweep_quantile, mark, stamp, touched,
            )  # fmt: skip
        if alive > greedy_faces[p]:
            _greedy(part_faces, p, interior, pos, faces, quadrics, border, endpoint, flip_cos,
                    min_quality, face_alive, vertex_alive, version, parent, refs, vstart, vcount,
                    top, alive, greedy_faces[p], max_key, mark, stamp)  # fmt: skip


@numba.njit(cache=True)
def _decimate(pos, faces, quadrics, border, target_faces, sweep_faces, sweep_quantile, endpoint,
              flip_cos, min_quality, face_alive, vertex_alive, version, parent):  # fmt: skip
    n, m = pos.shape[0], faces.shape[0]
    alive_faces = int(face_alive.sum())
    refs, vstart, vcount, top = build_refs(faces, face_alive, n, 6 * m)
    mark, stamp = np.zeros(n, np.int64), np.zeros(1, np.int64)
    if sweep_faces > target_faces and alive_faces > sweep_faces:
        alive_faces, refs, top = _sweeps(
            np.flatnonzero(face_alive), -1, vertex_alive.astype(np.int64), pos, faces, quadrics,
            border, endpoint, flip_cos, min_quality, face_alive, vertex_alive, version, parent,
            refs, vstart, vcount, top, alive_faces, sweep_faces, sweep_quantile,
            mark, stamp, np.zeros(m, np.int64),
        )  # fmt: skip
    # Phase 2: greedy by quadric error through the bucket queue, to the exact target.
    _greedy(
        np.flatnonzero(face_alive), -1, vertex_alive.astype(np.int64), pos, faces, quadrics,
        border, endpoint, flip_cos, min_quality, face_alive, vertex_alive, version, parent,
        refs, vstart, vcount, top, alive_faces, target_faces, N_BUCKETS, mark, stamp,
    )  # fmt: skip
    return face_alive, vertex_alive, parent


@numba.njit(cache=True, nogil=True)  # the bake's source normals run beside it
def prepare_quadrics(pos, faces, boundary_weight):
    """Plane quadrics (n, 10) and border flags (n,); border edges get perpendicular planes.
    Each vertex gathers its planes (its faces ascending, then its border edges by face and
    corner): the order, hence the bits, of a scatter over the faces, on every core."""
    n, m = pos.shape[0], faces.shape[0]
    shift = 0
    while (n >> shift) >= 1 << _BUCKET_BITS:  # vertex_faces' shift: n.bit_length() - 9
        shift += 1
    start, around = _vertex_faces(faces, n, shift, max(1, min(_MAX_CHUNKS, 3 * m // _CHUNK)))
    return _gather_quadrics(pos, faces, start, around, _face_planes(pos, faces), boundary_weight)


@numba.njit(cache=True, nogil=True, parallel=True)
def _face_planes(pos, faces):
    """(m, 5) each face's unit normal (zero when degenerate), plane offset and normal's length
    (twice its area), in one row: the gather reads a face's plane from one cache line."""
    m = faces.shape[0]
    planes = np.zeros((m, 5))
    for f in numba.prange(m):
        # Scalars, not pos[i] views and e1 = p1 - p0 arrays: two allocations and six atomic
        # reference counts a face were most of this loop's time.
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        p0x, p0y, p0z = pos[i0, 0], pos[i0, 1], pos[i0, 2]
        e1x, e1y, e1z = pos[i1, 0] - p0x, pos[i1, 1] - p0y, pos[i1, 2] - p0z
        e2x, e2y, e2z = pos[i2, 0] - p0x, pos[i2, 1] - p0y, pos[i2, 2] - p0z
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        length = np.sqrt(nx * nx + ny * ny + nz * nz)
        planes[f, 4] = length
        if length != 0.0:
            nx, ny, nz = nx / length, ny / length, nz / length
            planes[f, 0], planes[f, 1], planes[f, 2] = nx, ny, nz
            planes[f, 3] = -(nx * p0x + ny * p0y + nz * p0z)
    return planes


@numba.njit(cache=True, nogil=True, inline="always")
def _shared(faces, around, first, last, f, w):
    """Whether a face of ``around[first:last]`` other than ``f`` holds vertex ``w``."""
    for j in range(first, last):
        g = around[j]
        if g != f and (faces[g, 0] == w or faces[g, 1] == w or faces[g, 2] == w):
            return True
    return False


@numba.njit(cache=True, nogil=True, parallel=True)
def _gather_quadrics(pos, faces, start, around, planes, boundary_weight):
    """:func:`prepare_quadrics`' sums, a vertex at a time: its faces' planes (a face once per
    corner it holds), then the perpendicular planes of its open edges (no other face of its
    ring holds the edge's other end) by face and corner, as a scatter over faces adds them."""
    n = pos.shape[0]
    quadrics = np.zeros((n, 10))
    border = np.zeros(n, np.bool_)
    for v in numba.prange(n):
        first, last = start[v], start[v + 1]
        for j in range(first, last):
            f = around[j]
            if planes[f, 4] != 0.0:
                add_plane(quadrics, v, planes[f, 0], planes[f, 1], planes[f, 2], planes[f, 3],
                          0.5 * planes[f, 4])  # fmt: skip
        for j in range(first, last):
            f = around[j]
            if j > first and around[j - 1] == f:
                continue  # listed once per corner: its edges are walked once
            for k in range(3):
                a, b = faces[f, k], faces[f, (k + 1) % 3]
                if (a != v and b != v) or _shared(faces, around, first, last, f, a + b - v):
                    continue
                border[v] = True
                ex, ey, ez = pos[b, 0] - pos[a, 0], pos[b, 1] - pos[a, 1], pos[b, 2] - pos[a, 2]
                nx, ny, nz = planes[f, 0], planes[f, 1], planes[f, 2]
                sx = ey * nz - ez * ny
                sy = ez * nx - ex * nz
                sz = ex * ny - ey * nx
                size = np.sqrt(sx * sx + sy * sy + sz * sz)
                if size == 0.0:
                    continue
                sx, sy, sz = sx / size, sy / size, sz / size
                d = -(sx * pos[a, 0] + sy * pos[a, 1] + sz * pos[a, 2])
                weight = boundary_weight * (ex * ex + ey * ey + ez * ez)
                for _end in range((a == v) + (b == v)):  # an edge (v, v) adds its plane twice
                    add_plane(quadrics, v, sx, sy, sz, d, weight)
    return quadrics, border


@numba.njit(cache=True, nogil=True, parallel=True)
def _extent(pos, chunks):
    """(3,) high - low of ``pos`` (n, 3) over ``chunks`` pieces: bounds.extent's values (a
    min / max does not round; a NaN wins, as in numpy)."""
    n = pos.shape[0]
    low = np.full((chunks, 3), np.inf)
    high = np.full((chunks, 3), -np.inf)
    for c in numba.prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            for k in range(3):
                x = pos[i, k]
                if x < low[c, k] or x != x:
                    low[c, k] = x
                if x > high[c, k] or x != x:
                    high[c, k] = x
    out = np.empty(3)
    for k in range(3):
        lo, hi = low[0, k], high[0, k]
        for c in range(1, chunks):
            if low[c, k] < lo or low[c, k] != low[c, k]:
                lo = low[c, k]
            if high[c, k] > hi or high[c, k] != high[c, k]:
                hi = high[c, k]
        out[k] = hi - lo
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _live_centroids(face_alive, faces, pos, axis, chunks):
    """The live faces ascending (np.flatnonzero) and each one's centroid along ``axis``, times
    3 (the corners' sum, in corner order), over ``chunks`` pieces."""
    m = face_alive.shape[0]
    first = np.zeros(chunks + 1, np.int64)
    for c in numba.prange(chunks):
        count = 0
        for f in range(c * m // chunks, (c + 1) * m // chunks):
            count += face_alive[f]
        first[c + 1] = count
    for c in range(chunks):
        first[c + 1] += first[c]
    alive = np.empty(first[chunks], np.int64)
    centroid = np.empty(first[chunks])
    for c in numba.prange(chunks):
        i = first[c]
        for f in range(c * m // chunks, (c + 1) * m // chunks):
            if face_alive[f]:
                alive[i] = f
                a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
                centroid[i] = pos[a, axis] + pos[b, axis] + pos[c, axis]
                i += 1
    return alive, centroid


@numba.njit(cache=True, nogil=True, parallel=True)
def _slab_of(centroid, cuts):
    """np.searchsorted(cuts, centroid, side="right") for sorted, NaN-free ``cuts``: how many
    cuts are not above each value (a NaN value: all of them, as numpy sorts NaN last)."""
    part = np.empty(centroid.shape[0], np.int64)
    for i in numba.prange(centroid.shape[0]):
        x, slab = centroid[i], 0
        for cut in cuts:
            slab += not (x < cut)
        part[i] = slab
    return part


@numba.njit(cache=True, nogil=True, parallel=True)
def _slab_layout(alive, part, faces, n, parts, chunks):
    """The live faces ``alive`` grouped by slab ``part`` (< ``parts``), ascending inside each
    (a stable counting sort), each slab's start (parts + 1,), and (n,) the slab all of a
    vertex's live faces lie in, or -1 (on a cut, or in no live face)."""
    by_part, offsets = bucket_scatter(part, parts, 0, chunks)
    order = np.empty(alive.shape[0], np.int64)
    for i in numba.prange(alive.shape[0]):
        order[i] = alive[by_part[i]]
    interior = np.full(n, -1, np.int64)
    for i in numba.prange(alive.shape[0]):  # some face's slab (racing writes: any one)
        for k in range(3):
            interior[faces[alive[i], k]] = part[i]
    for i in numba.prange(alive.shape[0]):  # -1 where another face's slab differs
        for k in range(3):
            w = faces[alive[i], k]
            if interior[w] != part[i]:
                interior[w] = -1
    return order, offsets, interior


def parallel_parts(faces: int) -> int:
    """How many slabs the parallel phases cut a mesh of ``faces`` faces into: one per
    PARALLEL_PART_FACES, rounded up to an even count, at most PARALLEL_MAX_PARTS. It depends on
    the input only, never on the core count, so every machine makes the same mesh; numba
    spreads the parts over the threads it has in equal static chunks, so an even count keeps 2
    (and 4) cores equally loaded: 7 slabs of 800k faces went 4:3 over 2 threads, the third
    slab's time lost on the thread that finished first."""
    parts = max(faces // tolerances.PARALLEL_PART_FACES, 2)
    return int(min(parts + parts % 2, tolerances.PARALLEL_MAX_PARTS))


class ThreadScratch(NamedTuple):
    """Each parallel thread's reusable arrays (rows by numba.get_thread_id()): vcount, vstart,
    fill and mark (threads, n) int64 over vertices, touched (threads, m) int64 over faces, and
    stamp (threads,) the highest value in that thread's mark row."""

    vcount: np.ndarray
    vstart: np.ndarray
    fill: np.ndarray
    mark: np.ndarray
    touched: np.ndarray
    stamp: np.ndarray


def thread_scratch(n: int, m: int) -> ThreadScratch:
    """Scratch for every thread numba runs a parallel loop on now, for n vertices, m faces."""
    threads = numba.get_num_threads()
    return ThreadScratch(
        *(np.zeros((threads, n), np.int64) for _ in range(4)), np.zeros((threads, m), np.int64),
        np.zeros(threads, np.int64),
    )  # fmt: skip


def _sweep_parts(pos, faces, quadrics, border, sweep_faces, greedy_faces, endpoint, face_alive,
                 vertex_alive, version, parent, parts, shift, scratch,
                 max_key=N_BUCKETS) -> None:  # fmt: skip
    """Run phases 1 and 2 on ``parts`` slabs of the longest axis in parallel, down to
    ``greedy_faces`` in all (each slab its share). ``shift`` (0 or 0.5) moves the cuts by half
    a slab, so a second round reaches the strips the first round's cuts held still.

    Vertices with faces in two slabs stay fixed until a later round or the sequential phases.
    """
    chunks = chunk_count(len(face_alive))
    axis = int(np.argmax(_extent(pos, chunks)))
    alive, centroid = _live_centroids(face_alive, faces, pos, axis, chunks)
    if len(alive) == 0:
        return
    levels = (np.arange(1, parts + (1 if shift else 0)) - shift) / parts
    cuts = quantiles.quantile(centroid, levels, chunks)  # np.quantile's, on every core
    if not np.isnan(cuts).any() and np.all(cuts[:-1] <= cuts[1:]):
        part = _slab_of(centroid, cuts)
    else:  # NaN cuts (a NaN position): numpy's own search
        part = np.searchsorted(cuts, centroid, side="right").astype(np.int64)
    # Each slab's faces stay ascending (build_part_refs relies on it).
    order, offsets, interior = _slab_layout(alive, part, faces, len(pos), len(cuts) + 1, chunks)
    sizes = np.diff(offsets)
    share = sizes / len(alive)
    stop = np.ceil(share * sweep_faces).astype(np.int64)
    greedy = np.ceil(share * greedy_faces).astype(np.int64)
    _parallel_sweeps(
        order, offsets, interior, stop, greedy, pos, faces, quadrics, border,
        bool(endpoint), tolerances.FLIP_COS, tolerances.MIN_FACE_QUALITY, face_alive,
        vertex_alive, version, parent, tolerances.SWEEP_QUANTILE, int(max_key), scratch,
    )  # fmt: skip


@numba.njit(cache=True, parallel=True)
def _edge_key_counts(faces, face_alive, pos, quadrics, border, endpoint, threads):
    """(N_BUCKETS,) how many live edges (each once, as _greedy queues them) fall in each queue
    bucket: a histogram per thread (``threads``: numba.get_num_threads(), which a cached
    kernel cannot call), summed: integers, the same for any thread count."""
    m = faces.shape[0]
    counts = np.zeros((threads, N_BUCKETS), np.int64)
    for f in numba.prange(m):
        if not face_alive[f]:
            continue
        mine = counts[numba.get_thread_id()]
        q = np.empty(10, np.float64)
        for k in range(3):
            a, b = faces[f, k], faces[f, (k + 1) % 3]
            if a < b or (border[a] and border[b]):
                mine[_bucket(edge_cost(a, b, pos, quadrics, border, endpoint, q))] += 1
    return counts.sum(axis=0)


def _greedy_slabs(pos, faces, quadrics, border, target_faces, endpoint, face_alive,
                  vertex_alive, version, parent, parts, scratch) -> None:  # fmt: skip
    """Greedy collapses in the slabs, in parallel, bounded by one cost for all of them (not by a
    face share each, which would spend a flat slab's budget like a detailed one's): each round
    picks the queue bucket under which about the collapses still needed lie, the slabs collapse
    up to it, and the cuts move by half a slab, until PARALLEL_GREEDY_UNTIL x the target."""
    goal = int(target_faces * tolerances.PARALLEL_GREEDY_UNTIL)
    never = 10 * faces.shape[0]  # a stop count no slab reaches: the sweeps are skipped
    alive = int(np.count_nonzero(face_alive))
    for round_ in range(tolerances.PARALLEL_GREEDY_ROUNDS):
        if alive <= goal:
            return
        counts = _edge_key_counts(faces, face_alive, pos, quadrics, border, bool(endpoint),
                                  numba.get_num_threads())  # fmt: skip
        below = np.cumsum(counts)
        # A collapse removes two faces but raises its neighbours' costs: about a quarter of the
        # edges under a bound collapse in a round: a bound over as many edges as faces must go
        # (more overshoots: the first bound rises above the last, mean error +6 %).
        need = min(alive - goal, int(below[-1]) - 1)
        bound = int(np.searchsorted(below, need, side="right"))  # the need-th smallest key
        _sweep_parts(pos, faces, quadrics, border, never, target_faces, endpoint,
                     face_alive, vertex_alive, version, parent, parts, 0.5 * (round_ % 2),
                     scratch, bound)  # fmt: skip
        before, alive = alive, int(np.count_nonzero(face_alive))
        if before - alive < STALL_FRACTION * before:
            return


@numba.njit(cache=True, nogil=True, parallel=True)
def _unit_frame(vertices, centre, scale, faces):
    """(vertices - centre) / scale in float64 (n, 3), and an int64 copy of ``faces`` (m, 3): as
    numpy's astype, subtract, divide and copy, on every core."""
    pos = np.empty((vertices.shape[0], 3))
    for i in numba.prange(vertices.shape[0]):
        for k in range(3):
            pos[i, k] = (np.float64(vertices[i, k]) - centre[k]) / scale
    copy = np.empty((faces.shape[0], 3), np.int64)
    for f in numba.prange(faces.shape[0]):
        for k in range(3):
            copy[f, k] = faces[f, k]
    return pos, copy


@numba.njit(cache=True, nogil=True, parallel=True)
def _roots(parent):
    """The end of each element's chain in ``parent`` (where parent[r] == r): what squaring
    ``parent`` until it stops changing gives."""
    root = np.empty_like(parent)
    for i in numba.prange(parent.shape[0]):
        r = parent[i]
        while parent[r] != r:
            r = parent[r]
        root[i] = r
    return root


def collapse(
    vertices: np.ndarray, faces: np.ndarray, target_faces: int, endpoint: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decimate to ``target_faces``.

    vertices (n, 3), faces (m, 3) -> (vertices (n', 3) float32, faces (m', 3) int64,
    origin (n',) input index of each kept vertex, owner (n,) output vertex each input vertex
    merged into).
    """
    # Work in a unit frame: quadric magnitudes and the solver's threshold stay well scaled.
    centre = vertices.mean(axis=0).astype(np.float64)
    scale = float(np.linalg.norm(extent(vertices))) or 1.0
    pos, work_faces = _unit_frame(vertices, centre, scale, faces)
    quadrics, border = prepare_quadrics(pos, work_faces, tolerances.BOUNDARY_WEIGHT)
    sweep_faces = int(target_faces * tolerances.SWEEP_UNTIL)
    n, m = len(pos), len(work_faces)
    face_alive = np.ones(m, dtype=bool)
    vertex_alive = np.ones(n, dtype=bool)
    version = np.zeros(n, dtype=np.int64)
    parent = np.arange(n)
    slab_faces = int(target_faces * tolerances.PARALLEL_SWEEP_UNTIL)
    if m >= tolerances.PARALLEL_SWEEP_FACES and m > 2 * slab_faces:
        parts = parallel_parts(m)
        scratch = thread_scratch(n, m)  # one set per thread for every round, not per slab
        _sweep_parts(pos, work_faces, quadrics, border, slab_faces, slab_faces, endpoint,
                     face_alive, vertex_alive, version, parent, parts, 0.0, scratch)  # fmt: skip
        _greedy_slabs(pos, work_faces, quadrics, border, int(target_faces), endpoint, face_alive,
                      vertex_alive, version, parent, parts, scratch)  # fmt: skip
        del scratch
    _decimate(
        pos, work_faces, quadrics, border, int(target_faces), sweep_faces,
        tolerances.SWEEP_QUANTILE, bool(endpoint), tolerances.FLIP_COS, tolerances.MIN_FACE_QUALITY,
        face_alive, vertex_alive, version, parent,
    )  # fmt: skip
    parent = _roots(parent)  # follow merge chains to the surviving vertex
    origin = np.flatnonzero(vertex_alive)
    new_index = np.full(len(pos), -1, dtype=np.int64)
    new_index[origin] = np.arange(len(origin))
    out_faces = new_index[work_faces[face_alive]]
    out_vertices = (pos[origin] * scale + centre).astype(np.float32)
    return out_vertices, out_faces, origin, new_index[parent]
