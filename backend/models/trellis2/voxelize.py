"""A triangle mesh -> TRELLIS.2's flexible dual grid (O-Voxel shape), in numpy.

Upstream: ``o_voxel.convert.mesh_to_flexible_dual_grid`` (C++, ``o-voxel/src/convert/
flexible_dual_grid.cpp``), which the texturing pipeline runs with ``face_weight`` 1,
``boundary_weight`` 0.2 and ``regularization_weight`` 1e-2 on the mesh normalised into
[-0.5, 0.5]^3. Our version of the same stages, in grid units (voxel side 1; every quadric
scales by the same factor, so the solved points are the same up to the scale):

1. every grid line along each axis (integer positions in the other two) is cut with every
   triangle; a cut at height h on the line (X, Y) adds the triangle's plane quadric, the cut
   point and a count to the 4 voxels around the line at ``floor(h)``, and flags the edge of the
   voxel (X-1, Y-1, floor(h)) along that axis as intersected. These voxels are the grid;
2. every triangle adds its plane quadric to each grid voxel it overlaps (box-triangle test);
3. every boundary edge (used by one face, after welding equal positions: a UV seam is not a
   boundary) adds ``boundary_weight`` times its line quadric to the voxels it passes through
   (sampled every quarter voxel where upstream walks a DDA);
4. ``regularization_weight * count`` times the distance to the mean cut point is added, and
   the quadric is minimised in the voxel: unconstrained, else the best of the constrained
   minima on the voxel's faces, edges and corners.

Returns the voxel coordinates, the dual vertices inside their voxels (0..1 per axis: the
encoder's input) and the edge flags. Loops run over chunks of candidate (triangle, lattice
point) pairs, so memory stays bounded on large meshes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

FACE_WEIGHT, BOUNDARY_WEIGHT, REGULARIZATION_WEIGHT = 1.0, 0.2, 1e-2
_CHUNK = 1 << 20  # candidate pairs per step


@dataclass(frozen=True)
class FlexibleDualGrid:
    """coords (N, 3) int32 ascending by key, offsets (N, 3) float32 in [0, 1], intersected
    (N, 3) bool (edges along x, y, z), the grid's resolution."""

    coords: np.ndarray
    offsets: np.ndarray
    intersected: np.ndarray
    resolution: int


def normalise_mesh(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Upstream's ``preprocess_mesh`` scale: centre of the bounds, longest side 0.99999 ->
    (centre (3,), scale); the mesh is ``(v - centre) * scale``."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    extent = float((high - low).max())
    return (low + high) / 2, 0.99999 / max(extent, 1e-12)


def mesh_to_dual_grid(
    vertices: np.ndarray,
    faces: np.ndarray,
    resolution: int,
    boundary_weight: float = BOUNDARY_WEIGHT,
    regularization_weight: float = REGULARIZATION_WEIGHT,
) -> FlexibleDualGrid:
    """vertices (V, 3) inside [-0.5, 0.5]^3, faces (F, 3) -> the dual grid at ``resolution``."""
    points = (np.asarray(vertices, np.float64) + 0.5) * resolution
    faces = np.asarray(faces, np.int64)
    faces = faces[_area(points, faces) > 0]
    tri = points[faces]  # (F, 3, 3)
    plane = _planes(tri)  # (F, 4)
    res = resolution

    keys, cut_points, cut_faces, flags = _cuts(tri, res)
    if len(keys) == 0:
        raise ValueError("the mesh crosses no grid line at this resolution")
    voxels, inverse = np.unique(keys, return_inverse=True)
    n = len(voxels)
    count = np.bincount(inverse, minlength=n).astype(np.float64)
    mean = np.stack([np.bincount(inverse, cut_points[:, a], n) for a in range(3)], 1)
    mean /= count[:, None]
    quadric = _accumulate(inverse, _outer(plane[cut_faces]), n)
    intersected = np.zeros((n, 3), bool)
    for axis in range(3):
        own = flags == axis
        intersected[inverse[own], axis] = True

    if FACE_WEIGHT > 0:
        face_keys, face_ids = _overlaps(tri, plane, res)
        slot, present = _lookup(voxels, face_keys)
        quadric += _accumulate(slot[present], _outer(plane[face_ids[present]]), n)
    if boundary_weight > 0:
        quadric += boundary_weight * _boundary_quadrics(points, faces, voxels, res)
    if regularization_weight > 0:
        quadric += regularization_weight * count[:, None, None] * _point_quadrics(mean)

    coords = np.stack([voxels // (res * res), voxels // res % res, voxels % res], 1)
    dual = _solve_in_boxes(quadric, coords.astype(np.float64))
    offsets = np.clip(dual - coords, 0.0, 1.0).astype(np.float32)
    return FlexibleDualGrid(coords.astype(np.int32), offsets, intersected, res)


def _area(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (points[faces[:, i]] for i in range(3))
    return np.linalg.norm(np.cross(b - a, c - a), axis=1)


def _planes(tri: np.ndarray) -> np.ndarray:
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 1])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return np.concatenate([normal, -(normal * tri[:, 0]).sum(1, keepdims=True)], axis=1)


def _outer(vectors: np.ndarray) -> np.ndarray:
    return vectors[:, :, None] * vectors[:, None, :]


def _accumulate(index: np.ndarray, matrices: np.ndarray, n: int) -> np.ndarray:
    flat = matrices.reshape(len(matrices), -1)
    out = np.stack([np.bincount(index, flat[:, k], n) for k in range(flat.shape[1])], 1)
    return out.reshape(n, *matrices.shape[1:])


def _point_quadrics(p: np.ndarray) -> np.ndarray:
    q = np.zeros((len(p), 4, 4))
    q[:, :3, :3] = np.eye(3)
    q[:, :3, 3] = q[:, 3, :3] = -p
    q[:, 3, 3] = (p * p).sum(1)
    return q


def _key(coords: np.ndarray, res: int) -> np.ndarray:
    return (coords[..., 0] * res + coords[..., 1]) * res + coords[..., 2]


def _lookup(voxels: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    slot = np.searchsorted(voxels, keys).clip(max=len(voxels) - 1)
    return slot, voxels[slot] == keys


def _lattice(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, every integer pair in [lo, hi) (2 axes) -> (row index, (k, 2) pairs)."""
    size = np.maximum(hi - lo, 0)
    count = size[:, 0] * size[:, 1]
    row = np.repeat(np.arange(len(lo)), count)
    start = np.cumsum(count) - count
    local = np.arange(count.sum()) - np.repeat(start, count)
    width = np.maximum(size[row, 1], 1)
    pairs = lo[row] + np.stack([local // width, local % width], 1)
    return row, pairs


def _chunks(weights: np.ndarray) -> list[slice]:
    """Row ranges whose summed weights stay near _CHUNK."""
    bounds = np.searchsorted(np.cumsum(weights), np.arange(_CHUNK, weights.sum() + _CHUNK, _CHUNK))
    edges = np.unique(np.concatenate([[0], np.minimum(bounds + 1, len(weights)), [len(weights)]]))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _cuts(tri: np.ndarray, res: int):
    """Grid-line cuts -> (voxel key, cut point, face id, flagged axis or -1) per (cut, voxel)."""
    keys, cut_points, cut_faces, flags = [], [], [], []
    for ax2 in range(3):
        ax0, ax1 = (ax2 + 1) % 3, (ax2 + 2) % 3
        flat = tri[:, :, [ax0, ax1]]
        # Lines at integers X in (min, max], kept inside 1..res-1 as upstream's clamps do.
        lo = np.clip(np.floor(flat.min(axis=1)).astype(np.int64) + 1, 1, res)
        hi = np.clip(np.floor(flat.max(axis=1)).astype(np.int64) + 1, 1, res)
        sizes = np.prod(np.maximum(hi - lo, 0), axis=1)
        for part in _chunks(sizes):
            row, lines = _lattice(lo[part], hi[part])
            face = row + part.start
            u = _barycentric(flat[face], lines.astype(np.float64))
            inside = (u >= 0).all(axis=1)
            face, lines, u = face[inside], lines[inside], u[inside]
            height = (u * tri[face][:, :, ax2]).sum(1)
            level = np.floor(height).astype(np.int64)
            ok = (level >= 0) & (level < res)
            face, lines, height, level = face[ok], lines[ok], height[ok], level[ok]
            point = np.zeros((len(face), 3))
            point[:, ax0], point[:, ax1], point[:, ax2] = lines[:, 0], lines[:, 1], height
            for dx in (0, 1):
                for dy in (0, 1):
                    voxel = np.zeros((len(face), 3), np.int64)
                    voxel[:, ax0] = lines[:, 0] - 1 + dx
                    voxel[:, ax1] = lines[:, 1] - 1 + dy
                    voxel[:, ax2] = level
                    keys.append(_key(voxel, res))
                    cut_points.append(point)
                    cut_faces.append(face)
                    flags.append(np.full(len(face), ax2 if dx == dy == 0 else -1))
    if not keys:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0)
    return (np.concatenate(keys), np.concatenate(cut_points), np.concatenate(cut_faces),
            np.concatenate(flags))  # fmt: skip


def _barycentric(flat: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(k, 3, 2) triangles, (k, 2) points -> (k, 3) barycentric weights (any orientation)."""
    a, b, c = flat[:, 0], flat[:, 1], flat[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    safe = np.where(np.abs(den) < 1e-12, np.nan, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / safe
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / safe
    out = np.stack([1 - w1 - w2, w1, w2], 1)
    return np.where(np.isnan(out), -1.0, out)


def _overlaps(tri: np.ndarray, plane: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
    """(voxel key, face id) for every unit voxel a triangle overlaps: per column along the
    normal's dominant axis, the few voxels the plane crosses, then the box-triangle test."""
    main = np.abs(plane[:, :3]).argmax(axis=1)
    keys, ids = [], []
    for axis in range(3):
        faces = np.nonzero(main == axis)[0]
        if not len(faces):
            continue
        others = [(axis + 1) % 3, (axis + 2) % 3]
        t = tri[faces]
        lo = np.clip(np.floor(t[:, :, others].min(axis=1)).astype(np.int64), 0, res - 1)
        hi = np.clip(np.floor(t[:, :, others].max(axis=1)).astype(np.int64) + 1, 0, res)
        sizes = np.prod(np.maximum(hi - lo, 0), axis=1) * 3
        for part in _chunks(sizes):
            row, cols = _lattice(lo[part], hi[part])
            face = faces[part][row]
            n = plane[face]
            corners = cols[:, None, :] + np.array([[0, 0], [0, 1], [1, 0], [1, 1]])[None]
            # The plane's height over the column's corners bounds the voxels it can touch.
            height = -(n[:, None, 3] + (n[:, None, others] * corners).sum(2)) / n[:, None, axis]
            bottom = np.clip(np.floor(height.min(1)).astype(np.int64), 0, res - 1)
            top = np.clip(np.floor(height.max(1)).astype(np.int64), 0, res - 1)
            for step in range(3):
                level = bottom + step
                take = level <= np.minimum(top, bottom + 2)
                voxel = np.zeros((int(take.sum()), 3), np.int64)
                voxel[:, others[0]], voxel[:, others[1]] = cols[take, 0], cols[take, 1]
                voxel[:, axis] = level[take]
                hit = _box_overlap(tri[face[take]], plane[face[take]], voxel.astype(np.float64))
                keys.append(_key(voxel[hit], res))
                ids.append(face[take][hit])
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(ids)


def _box_overlap(tri: np.ndarray, plane: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Unit boxes at min corners p (k, 3) against triangles (k, 3, 3): the plane test and the
    three axis-plane projection tests (the triangle-box test upstream runs)."""
    n = plane[:, :3]
    c = (n > 0).astype(np.float64)
    d1 = (n * (c - tri[:, 0])).sum(1)
    d2 = (n * (1.0 - c - tri[:, 0])).sum(1)
    np_ = (n * p).sum(1)
    ok = (np_ + d1) * (np_ + d2) <= 0
    for a, b, normal_axis in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        sign = np.where(n[:, normal_axis] < 0, -1.0, 1.0)
        for i in range(3):
            v = tri[:, i]
            e = tri[:, (i + 1) % 3] - v
            ne = np.stack([-sign * e[:, b], sign * e[:, a]], 1)
            d = -(ne[:, 0] * v[:, a] + ne[:, 1] * v[:, b]) + np.maximum(ne, 0).sum(1)
            ok &= ne[:, 0] * p[:, a] + ne[:, 1] * p[:, b] + d >= 0
    return ok


def _boundary_quadrics(
    points: np.ndarray, faces: np.ndarray, voxels: np.ndarray, res: int
) -> np.ndarray:
    """Line quadrics of the boundary edges (welded positions) summed into the voxels."""
    out = np.zeros((len(voxels), 4, 4))
    _, weld = np.unique(np.round(points, 6), axis=0, return_inverse=True)
    welded = weld.reshape(-1)[faces]
    edges = np.sort(np.concatenate([welded[:, [0, 1]], welded[:, [1, 2]], welded[:, [2, 0]]]), 1)
    ends = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, first, counts = np.unique(edges, axis=0, return_index=True, return_counts=True)
    lone = first[counts == 1]
    if not len(lone):
        return out
    v0, v1 = points[ends[lone, 0]], points[ends[lone, 1]]
    length = np.linalg.norm(v1 - v0, axis=1)
    keep = length > 1e-6
    v0, v1, length = v0[keep], v1[keep], length[keep]
    direction = (v1 - v0) / length[:, None]
    a = np.eye(3)[None] - direction[:, :, None] * direction[:, None, :]
    b = -np.einsum("kij,kj->ki", a, v0)
    q = np.zeros((len(v0), 4, 4))
    q[:, :3, :3], q[:, :3, 3], q[:, 3, :3] = a, b, b
    q[:, 3, 3] = np.einsum("ki,kij,kj->k", v0, a, v0)
    samples = np.ceil(length * 4).astype(np.int64) + 1
    edge = np.repeat(np.arange(len(v0)), samples)
    t = (np.arange(samples.sum()) - np.repeat(np.cumsum(samples) - samples, samples))
    t = t / np.maximum(samples[edge] - 1, 1)
    cells = np.floor(v0[edge] + t[:, None] * (v1 - v0)[edge]).astype(np.int64)
    inside = ((cells >= 0) & (cells < res)).all(1)
    pairs = np.unique(np.stack([edge[inside], _key(cells[inside], res)], 1), axis=0)
    slot, present = _lookup(voxels, pairs[:, 1])
    return out + _accumulate(slot[present], q[pairs[present, 0]], len(voxels))


def _solve_in_boxes(q: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Minimise p^T Q p (p homogeneous) over each unit box [low, low + 1]^3."""
    high = low + 1.0
    a, rhs = q[:, :3, :3], -q[:, :3, 3]
    x = np.einsum("kij,kj->ki", np.linalg.pinv(a), rhs)
    inside = ((x >= low - 1e-9) & (x <= high + 1e-9)).all(1)
    out = x.copy()
    todo = np.nonzero(~inside)[0]
    if len(todo):
        out[todo] = _constrained(q[todo], low[todo], high[todo])
    return out


def _error(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    h = np.concatenate([p, np.ones((len(p), 1))], 1)
    return np.einsum("ki,kij,kj->k", h, q, h)


def _constrained(q: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The best of the minima on the box's 6 faces, 12 edges and 8 corners."""
    k = len(q)
    best = np.full(k, np.inf)
    out = low.copy()
    bounds = (low, high)

    def consider(p: np.ndarray, valid: np.ndarray) -> None:
        nonlocal best
        err = np.where(valid, _error(q, p), np.inf)
        better = err < best
        out[better], best = p[better], np.where(better, err, best)

    def inside(p: np.ndarray, axes: list[int]) -> np.ndarray:
        return ((p[:, axes] >= low[:, axes] - 1e-9) & (p[:, axes] <= high[:, axes] + 1e-9)).all(1)

    rows = np.arange(k)
    for fixed in range(3):
        f1, f2 = (fixed + 1) % 3, (fixed + 2) % 3
        a2 = q[:, [f1, f2]][:, :, [f1, f2]]
        inv = np.linalg.pinv(a2)
        for bound in bounds:
            value = bound[:, fixed]
            rhs = -(q[:, [f1, f2], fixed] * value[:, None] + q[:, [f1, f2], 3])
            free = np.einsum("kij,kj->ki", inv, rhs)
            p = np.empty((k, 3))
            p[:, fixed], p[:, f1], p[:, f2] = value, free[:, 0], free[:, 1]
            consider(p, inside(p, [f1, f2]))
    for free_axis in range(3):
        f1, f2 = (free_axis + 1) % 3, (free_axis + 2) % 3
        diag = q[rows, free_axis, free_axis]
        for b1 in bounds:
            for b2 in bounds:
                p = np.empty((k, 3))
                p[:, f1], p[:, f2] = b1[:, f1], b2[:, f2]
                num = q[:, free_axis, f1] * p[:, f1] + q[:, free_axis, f2] * p[:, f2]
                with np.errstate(divide="ignore", invalid="ignore"):
                    p[:, free_axis] = -(num + q[:, free_axis, 3]) / diag
                consider(p, np.isfinite(p[:, free_axis]) & inside(p, [free_axis]))
    for corner in range(8):
        p = np.stack([bounds[corner >> axis & 1][:, axis] for axis in range(3)], 1)
        consider(p, np.ones(k, bool))
    return out
