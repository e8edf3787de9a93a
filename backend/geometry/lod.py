"""LOD chain: coarser copies of the finished LOD0 that share its UVs, so all share one texture.

Why one shared texture rather than each LOD unwrapped and baked anew: game engines draw a LOD
group with one material, so the texture is loaded once and switching LODs costs nothing (no
second set of maps in memory, no texture swap visible at the switch); the file stays about the
size of LOD0's; and no bake is repeated. What it asks of the decimation is that every LOD
vertex keep a UV of LOD0 that is right for it, which this module's collapse rule guarantees:

- **Endpoint collapses only.** A surviving vertex stays where it was in LOD0, with its UVs and
  its normal and tangent frame, so the baked maps (normal map included: it is relative to that
  frame) stay valid on every LOD. LOD vertices are a subset of LOD0's split vertices.
- **Seams stay consistent.** The decimation runs on the welded surface (positions joined
  across UV seams, so the two sides of a seam can never drift apart and open a crack) while
  each face corner remembers which UV copy of its vertex it uses. Merging ``v`` into ``u`` is
  allowed only when every UV copy of ``v`` around it lies in a wedge that touches the edge
  (u, v), and then takes u's copy from the face on the edge in that wedge: a vertex inside a
  chart may merge into any neighbour; a seam vertex only along its seam, into a vertex on the
  same seam; a corner where three charts meet never goes.
- **No UV fold-overs.** A merge that would turn any UV triangle over (or flat) is refused, on
  top of qem.py's surface checks (link condition, normal flips, slivers).

Each level is about half the faces of the one before (``LOD_RATIO``), decimated from it in one
greedy run by quadric error (quadrics keep accumulating, so LOD2 is as good as if made from
LOD0). Charts bound how far this can go: a mesh whose UV atlas has many small charts stops
early at the faces its chart corners and seams need, and the caller reports it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from backend.geometry import decimate, export, tolerances, uv
from backend.geometry.bounds import extent
from backend.geometry.edge_collapse import apply_collapse, build_refs, collapse_ok, ring
from backend.geometry.qem import prepare_quadrics
from backend.geometry.quadrics import edge_cost, placement

LOD_RATIO = 0.5  # each LOD has about this share of the faces of the one before
MAX_LODS = 5  # LOD0 plus five coarser levels: 1/32 of LOD0's faces at the last
RING_CAPACITY = 8192  # faces around one vertex a collapse may touch (as qem.py)
UV_MIN_AREA = 1e-12  # a UV triangle smaller than this (UV units^2, doubled) counts as flat


@dataclass
class LODLevel:
    """faces (k, 3) int64 over LOD0's split vertices; target: the face count asked for."""

    faces: np.ndarray
    target: int

    @property
    def reached(self) -> bool:
        return decimate.within_tolerance(len(self.faces), self.target)


def lod_targets(faces: int, levels: int) -> list[int]:
    """Face targets of LOD1..LOD``levels`` for a LOD0 of ``faces`` faces."""
    return [
        max(decimate.MIN_TARGET_FACES, math.ceil(faces * LOD_RATIO**level))
        for level in range(1, levels + 1)
    ]


def lod_chain(
    vertices: np.ndarray,
    faces: np.ndarray,
    uvs: np.ndarray,
    weld: np.ndarray,
    levels: int,
) -> list[LODLevel]:
    """LOD1..LOD``levels`` of a UV-mapped mesh, each over the same split vertices.

    vertices (n, 3) split along UV seams, faces (m, 3) over them, uvs (n, 2), weld (n,) int
    the id shared by a vertex's seam copies (UVResult.source_vertex). Returns one LODLevel per
    level (fewer faces each; a level that cannot get lower ends with the faces it reached).
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    _ids, first, inverse = np.unique(weld, return_index=True, return_inverse=True)
    welded_faces = np.ascontiguousarray(inverse[faces], dtype=np.int64)
    positions = np.asarray(vertices, dtype=np.float64)[first]
    # A unit frame, as qem.py works in: quadric magnitudes stay well scaled.
    centre = positions.mean(axis=0)
    scale = float(np.linalg.norm(extent(positions))) or 1.0
    pos = (positions - centre) / scale
    quadrics, border = prepare_quadrics(pos, welded_faces, tolerances.BOUNDARY_WEIGHT)
    corner = faces.copy()
    face_alive = np.ones(len(faces), dtype=bool)
    vertex_alive = np.ones(len(pos), dtype=bool)
    version = np.zeros(len(pos), dtype=np.int64)
    parent = np.arange(len(pos))
    refs, vstart, vcount, top = build_refs(welded_faces, face_alive, len(pos), 6 * len(faces))
    uv64 = np.ascontiguousarray(uvs, dtype=np.float64)
    levels_out = []
    for target in lod_targets(len(faces), levels):
        refs, top = _collapse_to(
            target, pos, welded_faces, corner, uv64, quadrics, border, face_alive,
            vertex_alive, version, parent, refs, vstart, vcount, top, tolerances.FLIP_COS,
            tolerances.MIN_FACE_QUALITY,
        )  # fmt: skip
        levels_out.append(LODLevel(corner[face_alive].copy(), target))
    return levels_out


def export_levels(
    mapped: uv.UVResult,
    placed: np.ndarray,
    normals: np.ndarray,
    frame: np.ndarray,
    count: int,
    warnings: list[str],
) -> list[export.LODGeometry]:
    """LOD1..LOD``count`` of the pipeline's UV-mapped LOD0, ready to write: subsets of its
    ``placed`` vertices (n, 3) with their ``normals`` (n, 3) and tangent ``frame`` (n, 4) too,
    so LOD0's normal map stays right on them. A level that stops short of its target adds a
    line to ``warnings``."""
    levels = []
    chain = lod_chain(mapped.vertices, mapped.faces, mapped.uvs, mapped.source_vertex, count)
    for index, level in enumerate(chain, start=1):
        if not level.reached:
            warnings.append(
                f"LOD{index} reached {len(level.faces)} faces for a target of {level.target}: "
                "the UV seams and chart corners it must keep hold it there"
            )
        used, faces = compact(level.faces, len(mapped.vertices))
        levels.append(
            export.LODGeometry(placed[used], faces, normals[used], mapped.uvs[used], frame[used])
        )
    return levels


def report(
    name: str, mapped: uv.UVResult, levels: list[export.LODGeometry]
) -> list[dict[str, Any]]:
    """The manifest's per-level figures: {"name", "faces", "vertices"}, LOD0 first ([] when
    there are no LODs)."""
    if not levels:
        return []
    sizes = [(len(mapped.faces), len(mapped.vertices))]
    sizes += [(len(level.faces), len(level.vertices)) for level in levels]
    return [
        {"name": f"{name}_LOD{index}", "faces": faces, "vertices": vertices}
        for index, (faces, vertices) in enumerate(sizes)
    ]


def compact(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(used (k,) vertex indices in order, faces (m, 3) over them) for one LOD's faces."""
    used = np.zeros(n_vertices, dtype=bool)
    used[faces.reshape(-1)] = True
    new_index = np.cumsum(used) - 1
    return np.flatnonzero(used), new_index[faces]


@numba.njit(cache=True)
def _collapse_to(target, pos, faces, corner, uvs, quadrics, border, face_alive, vertex_alive,
                 version, parent, refs, vstart, vcount, top, flip_cos, min_quality):  # fmt: skip
    """Greedy cheapest-first endpoint collapses under the UV rule until ``target`` faces are
    alive or no edge may go. Mutates the state in place; returns (refs, top)."""
    n = pos.shape[0]
    q = np.empty(10)
    mark = np.zeros(n, np.int64)
    stamp = np.zeros(1, np.int64)
    ring_u = np.empty(RING_CAPACITY, np.int64)
    ring_v = np.empty(RING_CAPACITY, np.int64)
    swap_u = np.empty(RING_CAPACITY, np.int64)
    swap_v = np.empty(RING_CAPACITY, np.int64)
    alive = 0
    heap = [(0.0, 0, 0, 0, 0)]
    heap.pop()
    for f in range(faces.shape[0]):
        if not face_alive[f]:
            continue
        alive += 1
        for k in range(3):
            a, b = faces[f, k], faces[f, (k + 1) % 3]
            if a < b:
                cost = edge_cost(a, b, pos, quadrics, border, True, q)
                heap.append((cost, a, b, version[a], version[b]))
    heapq.heapify(heap)
    budget = 64 * (len(heap) + 1)  # pops: a bound that no sound run comes near
    while alive > target and len(heap) > 0 and budget > 0:
        budget -= 1
        cost, u, v, stamp_u, stamp_v = heapq.heappop(heap)
        if not (vertex_alive[u] and vertex_alive[v]):
            continue
        if version[u] != stamp_u or version[v] != stamp_v:
            continue
        if vcount[u] > RING_CAPACITY or vcount[v] > RING_CAPACITY:
            continue
        nu = ring(u, vstart, vcount, refs, face_alive, ring_u)
        nv = ring(v, vstart, vcount, refs, face_alive, ring_v)
        into_u = _uv_merge(v, u, ring_v, nv, faces, corner, uvs, swap_v)
        into_v = _uv_merge(u, v, ring_u, nu, faces, corner, uvs, swap_u)
        keep_u = (border[u] and not border[v]) or not into_v
        keep_v = (border[v] and not border[u]) or not into_u
        if (keep_u and not into_u) or (keep_v and not into_v) or (keep_u and keep_v):
            continue
        for t in range(10):
            q[t] = quadrics[u, t] + quadrics[v, t]
        x, y, z, actual, which = placement(q, pos[u], pos[v], True, keep_u, keep_v)
        if actual > cost + 1e-9 * abs(cost) + 1e-30:  # the UV rule forced the dearer end
            heapq.heappush(heap, (actual, u, v, stamp_u, stamp_v))
            continue
        if not collapse_ok(u, v, x, y, z, pos, faces, ring_u, nu, ring_v, nv, mark, stamp,
                           border, flip_cos, min_quality):  # fmt: skip
            continue
        if which == 1:
            u, v = v, u
            ring_u, ring_v = ring_v, ring_u
            nu, nv = nv, nu
            swap_u, swap_v = swap_v, swap_u
        removed, refs, top = apply_collapse(
            u, v, x, y, z, q, pos, faces, quadrics, border, face_alive, vertex_alive, version,
            parent, ring_u, nu, ring_v, nv, refs, vstart, vcount, top,
        )  # fmt: skip
        alive -= removed
        for i in range(nv):  # v's corners take u's UV copy of their wedge
            f = ring_v[i]
            if face_alive[f]:
                for k in range(3):
                    if faces[f, k] == u:
                        corner[f, k] = swap_v[i]
        for i in range(vstart[u], vstart[u] + vcount[u]):
            f = refs[i]
            for k in range(3):
                w = faces[f, k]
                if w != u:
                    cost = edge_cost(u, w, pos, quadrics, border, True, q)
                    heapq.heappush(heap, (cost, u, w, version[u], version[w]))
    return refs, top


@numba.njit(cache=True)
def _uv_merge(v, u, ring_v, nv, faces, corner, uvs, replacement):
    """May ``v`` merge into ``u`` without breaking UVs? Fills ``replacement[i]``: the UV copy
    (split vertex) that v's corner of ``ring_v[i]`` takes (-1 for the faces on the edge, which
    go). True when every copy of v has a wedge touching the edge and no UV triangle turns over.
    """
    edge_v = np.empty(2, np.int64)
    edge_u = np.empty(2, np.int64)
    on_edge = 0
    for i in range(nv):
        f = ring_v[i]
        ku = _corner_of(faces, f, u)
        if ku < 0:
            continue
        if on_edge == 2:
            return False  # a non-manifold edge: leave it alone
        edge_v[on_edge] = corner[f, _corner_of(faces, f, v)]
        edge_u[on_edge] = corner[f, ku]
        on_edge += 1
    if on_edge == 0:
        return False
    if on_edge == 2 and edge_v[0] == edge_v[1] and edge_u[0] != edge_u[1]:
        return False  # u is split across the edge but v is not: a seam ends at v
    for i in range(nv):
        f = ring_v[i]
        if _corner_of(faces, f, u) >= 0:
            replacement[i] = -1
            continue
        kv = _corner_of(faces, f, v)
        copy = corner[f, kv]
        target = -1
        for j in range(on_edge):
            if edge_v[j] == copy:
                target = edge_u[j]
        if target < 0:
            return False  # this copy of v is on a seam the edge does not follow
        replacement[i] = target
        before = _uv_area(uvs, corner[f, 0], corner[f, 1], corner[f, 2])
        after = _uv_area(
            uvs,
            target if kv == 0 else corner[f, 0],
            target if kv == 1 else corner[f, 1],
            target if kv == 2 else corner[f, 2],
        )
        if before * after <= 0.0 or abs(after) < UV_MIN_AREA:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _corner_of(faces, f, w):
    for k in range(3):
        if faces[f, k] == w:
            return k
    return -1


@numba.njit(cache=True, inline="always")
def _uv_area(uvs, a, b, c):
    return (uvs[b, 0] - uvs[a, 0]) * (uvs[c, 1] - uvs[a, 1]) - (uvs[c, 0] - uvs[a, 0]) * (
        uvs[b, 1] - uvs[a, 1]
    )
