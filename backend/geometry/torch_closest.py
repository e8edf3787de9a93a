"""transfer.closest_faces on a torch device: the nearest low-res face to each high-res vertex.

Each point tests the faces around its nearby low-res vertices (welded across UV seams), as the
compiled search does. Here the rings are padded to the longest one, every (point, candidate)
pair gets the closest point on its triangle by Ericson's region test, written as selections
over all regions in the same float64 arithmetic as transfer._closest_on_triangle, and an argmin
per point keeps the first nearest candidate in the compiled search's order. Same faces; the
distances agree to the last bit in float32 (what the splat uses) and within one float64 ulp
(CPU torch's sqrt is not always correctly rounded; CUDA's is). The rings are built on the
host (the low-res mesh is small), so no host sync is needed: chunk sizes follow from the ring
lengths known there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PAIRS_PER_CHUNK = 4_000_000  # (point, candidate face) pairs in flight (~40 float64 temporaries)


def _rings(lo_faces: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces around each welded vertex id: ring_ptr (ids + 1,), ring_faces, as transfer.py."""
    corner_owner = ids[lo_faces].reshape(-1)
    order = np.argsort(corner_owner, kind="stable")
    ring_ptr = np.zeros(int(ids.max()) + 2, dtype=np.int64)
    np.cumsum(np.bincount(corner_owner, minlength=len(ring_ptr) - 1), out=ring_ptr[1:])
    return ring_ptr, (order // 3).astype(np.int64)


def closest_faces(
    points: Any, near_vertex: np.ndarray, lo_vertices: np.ndarray, lo_faces: np.ndarray,
    weld: np.ndarray | None, device: str,
) -> tuple[Any, Any]:  # fmt: skip
    """``transfer.closest_faces`` on ``device``: points (k, 3) (numpy or tensor), near_vertex
    (k,) or (k, j) -> face (k,) int64 and distance (k,) float64 tensors on ``device``."""
    import torch  # optional dependency: only the torch geometry path needs it

    dev = torch.device(device)
    ids = np.arange(len(lo_vertices)) if weld is None else np.asarray(weld, np.int64)
    ring_ptr, ring_faces = _rings(np.asarray(lo_faces, np.int64), ids)
    width = int(np.diff(ring_ptr).max())  # the longest ring: candidates per near vertex
    starts = torch.as_tensor(ids[np.asarray(near_vertex)].reshape(len(near_vertex), -1), device=dev)
    pts = torch.as_tensor(points, device=dev).to(torch.float64)
    ptr = torch.as_tensor(ring_ptr, device=dev)
    rings = torch.as_tensor(np.append(ring_faces, 0), device=dev)  # a pad entry at the end
    verts = torch.as_tensor(np.asarray(lo_vertices, np.float64), device=dev)
    tris = torch.as_tensor(np.asarray(lo_faces, np.int64), device=dev)
    face = torch.empty(len(pts), dtype=torch.int64, device=dev)
    dist = torch.empty(len(pts), dtype=torch.float64, device=dev)
    step = max(PAIRS_PER_CHUNK // max(starts.shape[1] * width, 1), 1)
    slot = torch.arange(width, device=dev)
    for begin in range(0, len(pts), step):
        s = starts[begin : begin + step]  # (c, j)
        first, length = ptr[s], ptr[s + 1] - ptr[s]
        valid = slot < length[..., None]  # (c, j, width), in the compiled loop's order
        at = torch.where(valid, first[..., None] + slot, len(ring_faces)).reshape(len(s), -1)
        candidate = rings[at]  # (c, j * width)
        corner = verts[tris[candidate]]  # (c, q, 3 corners, 3)
        d = _squared_distance(pts[begin : begin + step, None, :], corner)
        d = torch.where(valid.reshape(len(s), -1) & ~torch.isnan(d), d, torch.inf)
        best_d, best = d.min(dim=1)  # ties: the first index, as the compiled strict "<"
        chosen = candidate.gather(1, best[:, None])[:, 0]
        face[begin : begin + step] = torch.where(best_d < torch.inf, chosen, -1)
        dist[begin : begin + step] = torch.sqrt(best_d)
    return face, dist


def _squared_distance(p: Any, corner: Any) -> Any:
    """Squared distance from p (c, 1, 3) to triangles corner (c, q, 3, 3) -> (c, q); the
    operations of transfer._closest_on_triangle and _squared_distance_to_face, in order."""
    import torch

    a, b, c = corner[..., 0, :], corner[..., 1, :], corner[..., 2, :]

    def dot(u: Any, v: Any) -> Any:  # left to right, as the scalar code sums
        return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]

    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = p - b
    d3, d4 = dot(ab, bp), dot(ac, bp)
    vc = d1 * d4 - d3 * d2
    cp = p - c
    d5, d6 = dot(ab, cp), dot(ac, cp)
    vb = d5 * d2 - d1 * d6
    va = d3 * d6 - d5 * d4
    one, zero = torch.ones_like(d1), torch.zeros_like(d1)
    # The interior case, then each region test from last to first, so the first that holds wins.
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    u = 1.0 - v - w
    cases = [
        (va <= 0.0) & ((d4 - d3) >= 0.0) & ((d5 - d6) >= 0.0),
        (vb <= 0.0) & (d2 >= 0.0) & (d6 <= 0.0),
        (d6 >= 0.0) & (d5 <= d6),
        (vc <= 0.0) & (d1 >= 0.0) & (d3 <= 0.0),
        (d3 >= 0.0) & (d4 <= d3),
        (d1 <= 0.0) & (d2 <= 0.0),
    ]
    t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    t_ac = d2 / (d2 - d6)
    t_ab = d1 / (d1 - d3)
    values = [
        (zero, 1.0 - t_bc, t_bc),
        (1.0 - t_ac, zero, t_ac),
        (zero, zero, one),
        (1.0 - t_ab, t_ab, zero),
        (zero, one, zero),
        (one, zero, zero),
    ]
    for case, (cu, cv, cw) in zip(cases, values, strict=True):
        u, v, w = torch.where(case, cu, u), torch.where(case, cv, v), torch.where(case, cw, w)
    q = u[..., None] * a + v[..., None] * b + w[..., None] * c - p
    return dot(q, q)
