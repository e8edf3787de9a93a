"""One edge collapse of the quadric decimator (qem.py), on its face-ring structure.

Each vertex keeps the faces around it as a slice of one shared ``refs`` array (``vstart``,
``vcount``); a collapse appends the survivor's new ring at the end and rebuilds the array only
when it runs out. A collapse is refused when it would break the surface: the link condition
(the two rings share exactly the vertices of the faces on the edge, so no non-manifold edge or
pinched piece can appear), a face turning over (normal change beyond ``flip_cos``), a sliver
(shape quality below ``min_quality``), or an interior edge joining two border vertices.
Compiled with numba (cached on disk).
"""

from __future__ import annotations

import numba
import numpy as np

from backend.geometry.quadrics import place


@numba.njit(cache=True, _nrt=False, forceinline=True)
def ring(u, vstart, vcount, refs, face_alive, out):
    """The live faces around ``u`` into ``out``; returns how many."""
    n = 0
    for j in range(vstart[u], vstart[u] + vcount[u]):
        f = refs[j]
        if face_alive[f]:
            out[n] = f
            n += 1
    return n


@numba.njit(cache=True, _nrt=False)
def collapse_ok(u, v, x, y, z, pos, faces, ring_u, nu, ring_v, nv, mark, stamp, border,
                 flip_cos, min_quality):  # fmt: skip
    """Link condition, no flipped normals and no slivers for merging u and v at (x, y, z)."""
    stamp[0] += 1
    s1 = stamp[0]
    for i in range(nu):
        for k in range(3):
            mark[faces[ring_u[i], k]] = s1
    stamp[0] += 1
    s2 = stamp[0]
    shared_vertices = 0
    shared_faces = 0
    for i in range(nv):
        f = ring_v[i]
        if faces[f, 0] == u or faces[f, 1] == u or faces[f, 2] == u:
            shared_faces += 1
        for k in range(3):
            w = faces[f, k]
            if w != u and w != v and mark[w] == s1:
                mark[w] = s2
                shared_vertices += 1
    if shared_faces == 0 or shared_vertices != shared_faces:
        return False  # non-manifold result, or a pinch
    if border[u] and border[v] and shared_faces != 1:
        return False  # an interior edge across a border would glue two borders together
    for side in range(2):
        ring = ring_u if side == 0 else ring_v
        n = nu if side == 0 else nv
        moving = u if side == 0 else v
        other = v if side == 0 else u
        for i in range(n):
            f = ring[i]
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            if a == other or b == other or c == other:
                continue  # this face disappears with the edge
            if not face_ok(pos, a, b, c, moving, x, y, z, flip_cos, min_quality):
                return False
    return True


@numba.njit(cache=True, inline="always")
def face_ok(pos, a, b, c, moving, x, y, z, flip_cos, min_quality):
    """Face abc with vertex ``moving`` moved to (x, y, z): not turned over, not a new sliver."""
    ax, ay, az = pos[a, 0], pos[a, 1], pos[a, 2]
    bx, by, bz = pos[b, 0], pos[b, 1], pos[b, 2]
    cx, cy, cz = pos[c, 0], pos[c, 1], pos[c, 2]
    o1x, o1y, o1z = bx - ax, by - ay, bz - az
    o2x, o2y, o2z = cx - ax, cy - ay, cz - az
    if a == moving:
        ax, ay, az = x, y, z
    elif b == moving:
        bx, by, bz = x, y, z
    else:
        cx, cy, cz = x, y, z
    e1x, e1y, e1z = bx - ax, by - ay, bz - az
    e2x, e2y, e2z = cx - ax, cy - ay, cz - az
    nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
    ox, oy, oz = o1y * o2z - o1z * o2y, o1z * o2x - o1x * o2z, o1x * o2y - o1y * o2x
    new_len = np.sqrt(nx * nx + ny * ny + nz * nz)
    old_len = np.sqrt(ox * ox + oy * oy + oz * oz)
    if new_len == 0.0:
        return False
    if old_len > 0.0 and nx * ox + ny * oy + nz * oz < flip_cos * new_len * old_len:
        return False
    edges = (
        e1x * e1x + e1y * e1y + e1z * e1z + e2x * e2x + e2y * e2y + e2z * e2z
        + (e2x - e1x) ** 2 + (e2y - e1y) ** 2 + (e2z - e1z) ** 2
    )  # fmt: skip
    if 2.0 * np.sqrt(3.0) * new_len < min_quality * edges:
        old_edges = (
            o1x * o1x + o1y * o1y + o1z * o1z + o2x * o2x + o2y * o2y + o2z * o2z
            + (o2x - o1x) ** 2 + (o2y - o1y) ** 2 + (o2z - o1z) ** 2
        )  # fmt: skip
        if 2.0 * np.sqrt(3.0) * old_len >= min_quality * old_edges:
            return False  # would make a sliver out of a sound face
    return True


@numba.njit(cache=True)
def build_refs(faces, face_alive, n, capacity):
    vcount = np.zeros(n, np.int64)
    for f in range(faces.shape[0]):
        if face_alive[f]:
            for k in range(3):
                vcount[faces[f, k]] += 1
    vstart = np.zeros(n, np.int64)
    total = 0
    for i in range(n):
        vstart[i] = total
        total += vcount[i]
    refs = np.empty(max(capacity, total + 1024), np.int64)
    fill = vstart.copy()
    for f in range(faces.shape[0]):
        if face_alive[f]:
            for k in range(3):
                w = faces[f, k]
                refs[fill[w]] = f
                fill[w] += 1
    return refs, vstart, vcount, total


@numba.njit(cache=True, nogil=True)
def count_part_rings(faces, face_list, face_alive, vcount, vstart):
    """Ring sizes (``vcount``) and offsets (``vstart``) from ``face_list``'s live faces only,
    into the caller's (n,) arrays: only the entries of those faces' vertices are written, so
    the cost follows the list, not n (a slab of 1/8 of a mesh paid four passes over every
    vertex, per slab and round). Rings are laid out in the order the faces first reach their
    vertices; each ring lists its faces in ``face_list``'s order. Returns the total entries."""
    for f in face_list:
        if face_alive[f]:
            for k in range(3):
                vcount[faces[f, k]] = 0
    for f in face_list:
        if face_alive[f]:
            for k in range(3):
                vcount[faces[f, k]] += 1
    total = 0
    for f in face_list:  # place each ring once: a placed count is kept negative meanwhile
        if face_alive[f]:
            for k in range(3):
                w = faces[f, k]
                if vcount[w] > 0:
                    vstart[w] = total
                    total += vcount[w]
                    vcount[w] = -vcount[w]
    for f in face_list:
        if face_alive[f]:
            for k in range(3):
                w = faces[f, k]
                if vcount[w] < 0:
                    vcount[w] = -vcount[w]
    return total


@numba.njit(cache=True, nogil=True)
def build_part_refs(faces, face_list, face_alive, vcount, vstart, fill, capacity):
    """:func:`build_refs` over the live faces of ``face_list`` only, into the caller's (n,)
    ``vcount``, ``vstart`` and ``fill`` (the entries of the list's vertices overwritten): no
    pass over every face or vertex and no fresh vertex-sized arrays per slab. With
    ``face_list`` ascending every ring lists its faces in build_refs' order. Returns
    (refs, top)."""
    total = count_part_rings(faces, face_list, face_alive, vcount, vstart)
    refs = np.empty(max(capacity, total + 1024), np.int64)
    for f in face_list:
        for k in range(3):
            fill[faces[f, k]] = vstart[faces[f, k]]
    fill_part_rings(faces, face_list, face_alive, refs, fill)
    return refs, total


@numba.njit(cache=True, nogil=True)
def fill_part_rings(faces, face_list, face_alive, refs, fill):
    """Write each live face of ``face_list`` into its corners' rings in ``refs``, at ``fill``
    (each ring's next free slot, advanced as it goes)."""
    for f in face_list:
        if face_alive[f]:
            for k in range(3):
                w = faces[f, k]
                refs[fill[w]] = f
                fill[w] += 1


@numba.njit(cache=True, _nrt=False)
def try_collapse(u, v, pos, faces, quadrics, border, endpoint, flip_cos, min_quality, face_alive,
                  vertex_alive, version, parent, mark, stamp, ring_u, ring_v, refs, vstart,
                  vcount, top, q):  # fmt: skip
    """Collapse edge (u, v) if allowed. Returns (survivor or -1, faces removed, top).

    ``refs`` must have room for the survivor's ring (``top + 2 * len(ring_u)`` entries: the
    callers compact it first); a collapse that would not fit is refused, never grown here.
    Compiled without reference counting (it allocates nothing): with it, every try paid an
    atomic increment and decrement on each of its 16 array arguments, most of them shared by
    the slab threads (one cache line bounced between the cores per array and try)."""
    if vcount[u] > ring_u.shape[0] or vcount[v] > ring_v.shape[0]:
        return -1, 0, top
    if top + vcount[u] + vcount[v] > refs.shape[0]:
        return -1, 0, top
    nu = ring(u, vstart, vcount, refs, face_alive, ring_u)
    nv = ring(v, vstart, vcount, refs, face_alive, ring_v)
    for t in range(10):
        q[t] = quadrics[u, t] + quadrics[v, t]
    pin_u = border[u] and not border[v]
    pin_v = border[v] and not border[u]
    x, y, z, _, which = place(
        q, pos[u, 0], pos[u, 1], pos[u, 2], pos[v, 0], pos[v, 1], pos[v, 2], endpoint, pin_u,
        pin_v,
    )  # fmt: skip
    if not collapse_ok(u, v, x, y, z, pos, faces, ring_u, nu, ring_v, nv, mark, stamp,
                        border, flip_cos, min_quality):  # fmt: skip
        return -1, 0, top
    if which == 1:  # keep the vertex that stays put (its own data stays exact)
        u, v = v, u
        ring_u, ring_v = ring_v, ring_u
        nu, nv = nv, nu
    removed, top = merge_edge(
        u, v, x, y, z, q, pos, faces, quadrics, border, face_alive, vertex_alive, version,
        parent, ring_u, nu, ring_v, nv, refs, vstart, vcount, top,
    )  # fmt: skip
    return u, removed, top


@numba.njit(cache=True)
def apply_collapse(u, v, x, y, z, q, pos, faces, quadrics, border, face_alive, vertex_alive,
                   version, parent, ring_u, nu, ring_v, nv, refs, vstart, vcount, top):  # fmt: skip
    """Merge ``v`` into ``u`` at (x, y, z) with quadric ``q`` (checks already passed): the faces
    on the edge die, v's other faces take u, u's ring is appended to ``refs``. Returns
    (faces removed, refs, top)."""
    if top + nu + nv > refs.shape[0]:
        refs, new_start, new_count, top = build_refs(
            faces, face_alive, pos.shape[0], refs.shape[0]
        )
        vstart[:] = new_start
        vcount[:] = new_count
    removed, top = merge_edge(
        u, v, x, y, z, q, pos, faces, quadrics, border, face_alive, vertex_alive, version,
        parent, ring_u, nu, ring_v, nv, refs, vstart, vcount, top,
    )  # fmt: skip
    return removed, refs, top


@numba.njit(cache=True, _nrt=False)
def merge_edge(u, v, x, y, z, q, pos, faces, quadrics, border, face_alive, vertex_alive,
               version, parent, ring_u, nu, ring_v, nv, refs, vstart, vcount, top):  # fmt: skip
    """:func:`apply_collapse` when ``refs`` has room for ``nu + nv`` more entries after
    ``top`` (the caller's to ensure): nothing allocated, no reference counts. Returns (faces
    removed, top)."""
    pos[u, 0], pos[u, 1], pos[u, 2] = x, y, z
    for t in range(10):
        quadrics[u, t] = q[t]
    border[u] = border[u] or border[v]
    vertex_alive[v] = False
    parent[v] = u
    version[u] += 1
    removed = 0
    start = top
    for i in range(nu):
        f = ring_u[i]
        if faces[f, 0] == v or faces[f, 1] == v or faces[f, 2] == v:
            face_alive[f] = False
            removed += 1
        else:
            refs[top] = f
            top += 1
    for i in range(nv):
        f = ring_v[i]
        if not face_alive[f]:
            continue
        for k in range(3):
            if faces[f, k] == v:
                faces[f, k] = u
        refs[top] = f
        top += 1
    vstart[u] = start
    vcount[u] = top - start
    return removed, top
