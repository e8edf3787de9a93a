"""Inner-shell removal: drop the surface that can never be seen from outside the mesh.

Generated meshes carry surface nobody will ever see: a body under its clothes, a wall doubled
on the inside, a closed shell fully inside another. Removing it before decimation spends the
face budget on visible surface, and keeps its colours out of the bake.

How, and why this way:

- **Visible means visible from infinity.** A point can be seen by some camera outside the
  object exactly when some ray from it escapes to infinity unblocked, so "seen by an
  orthographic view from direction d, for some d" is the definition itself, not a heuristic.
  We sample it: ``VISIBILITY_DIRECTIONS`` directions spread evenly over the sphere (a Fibonacci
  lattice), each an orthographic depth + face-id image of ``VISIBILITY_PIXELS`` across the
  bounding sphere, drawn with raster.py's compiled kernel; the views run in parallel, one per
  thread, in rounds, spread-out views first, and drawing stops once every patch has been seen
  (more views could only add to what is seen): a noisy mesh of many visible pieces is decided
  in the first round (8 views of 48 on two cores: 4.4x less time, same answer). Faces are
  two-sided: a face seen from behind is seen (an open bowl's inside).
- **Decide per patch, never per face.** A per-face answer would punch holes wherever a
  concavity is deeper than the sampled directions reach, and would lose thin features whose
  faces are smaller than a pixel. So the unit kept or dropped is a *patch*: faces connected
  across manifold edges (edges with exactly two faces). A closed body, an open sheet or a
  thick wall is one patch; pieces touching only at a vertex, or at a non-manifold edge (an
  inner wall built into a box, a shirt stitched to a body), are separate patches. A patch is
  kept when any of its faces is hit by any view's ray, or any of its vertices projects onto an
  empty pixel of a view (a sub-pixel sliver sticking out of the silhouette); a patch no ray
  ever reaches is dropped whole. So a visible surface is never opened, and what goes is
  exactly the shells no camera can reach.
- **Exact for enclosed shells.** A shell inside a closed surface is never hit: every sample
  ray meets the closed surface first (the rasteriser leaves no cracks on shared edges), at
  any resolution. The failure direction is conservative: a hidden shell is kept when the outer
  surface has a hole that shows it, or when it comes within about a pixel of the silhouette.

A mesh that is one patch (the common case: a single watertight body) is returned untouched
without drawing anything. On the torch geometry path the same views are drawn on the device
(torch_inner_shells.py: the same images, so the same answer).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np

from backend.geometry import adjacency, clean, tolerances
from backend.geometry.bounds import bounds

_EDGE_EPS = 1e-7  # raster.py's barycentric slack: no cracks along shared edges
_SPAN_EPS = 1e-6  # pixels: bounds widened so a centre on an edge is still tried


@dataclass
class InnerShellResult:
    """hidden (m,) bool: faces to remove; patch (m,) int64 patch id per face; figures."""

    hidden: np.ndarray
    patch: np.ndarray
    patches: int
    hidden_patches: int
    views: int  # directions asked for
    views_drawn: int = 0  # drawn before every patch was seen (then the rest are skipped)

    @property
    def hidden_faces(self) -> int:
        return int(np.count_nonzero(self.hidden))


def surface_patches(
    faces: np.ndarray, n_vertices: int, pairs: tuple[np.ndarray, ...] | None = None
) -> tuple[int, np.ndarray]:
    """Faces (m, 3) joined across manifold edges: (count, (m,) int64 patch id per face).

    ``pairs`` is :func:`adjacency.manifold_face_pairs`'s answer when the caller has it.
    """
    if len(faces) == 0:
        return 0, np.zeros(0, dtype=np.int64)
    a, b, _ = pairs or adjacency.manifold_face_pairs(faces, n_vertices)
    patch = adjacency.component_labels(len(faces), a, b)
    return int(patch.max()) + 1, patch


def view_directions(count: int) -> np.ndarray:
    """(count, 3) unit directions spread evenly over the sphere (Fibonacci lattice)."""
    index = np.arange(count, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * index / count
    radius = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    angle = index * math.pi * (3.0 - math.sqrt(5.0))
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle), z])


def find_inner_shells(
    vertices: np.ndarray,
    faces: np.ndarray,
    directions: int = tolerances.VISIBILITY_DIRECTIONS,
    pixels: int = tolerances.VISIBILITY_PIXELS,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> InnerShellResult:
    """Which faces (m, 3) over vertices (n, 3) belong to patches no outside view can see.

    ``pairs``: :func:`adjacency.manifold_face_pairs` of ``faces``, when the caller has it.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    setup = patch_setup(vertices, faces, pairs)
    count, patch, cull, lowest, alone = (setup.count, setup.patch, setup.cull, setup.lowest,
                                         setup.alone)  # fmt: skip
    if count <= 1:
        return InnerShellResult(np.zeros(len(faces), dtype=bool), patch, count, 0, 0)
    seen = np.zeros(count, dtype=bool)
    drawn = 0
    # Views in rounds, spread-out ones first; a view can only add to what is seen, so once
    # every patch is seen the remaining views cannot change the answer and are not drawn.
    for seen_face, outside_vertex, views in _visible_rounds(vertices, faces, directions, pixels,
                                                            cull):  # fmt: skip
        drawn += views
        seen[patch[seen_face]] = True
        seen[lowest[outside_vertex & alone]] = True
        if seen.all():
            break
    hidden = ~seen[patch]
    return InnerShellResult(hidden, patch, count, int(count - seen.sum()), directions, drawn)


@dataclass
class PatchSetup:
    """What the views are read against: patch count, patch (m,) id per face, cull (m,) bool
    (faces of closed outward patches), and per vertex (n,) its lowest patch id and whether it
    belongs to that patch alone. numpy arrays here; torch_inner_shells.patch_setup fills it
    with tensors on its device."""

    count: int
    patch: np.ndarray
    cull: np.ndarray
    lowest: np.ndarray
    alone: np.ndarray


def patch_setup(
    vertices: np.ndarray, faces: np.ndarray, pairs: tuple[np.ndarray, ...] | None = None
) -> PatchSetup:
    """Patches of ``faces`` (m, 3) and what the views need of them (cull, lowest, alone are
    empty when there is at most one patch: nothing is drawn then)."""
    pairs = pairs or adjacency.manifold_face_pairs(faces, len(vertices))
    count, patch = surface_patches(faces, len(vertices), pairs)
    if count <= 1:
        empty = np.zeros(0, dtype=bool)
        return PatchSetup(count, patch, empty, np.zeros(0, np.int64), empty)
    cull = _closed_outward(vertices, faces, patch, count, pairs)[patch]
    # Only a vertex of one patch alone speaks for it: a vertex shared with a visible patch (an
    # inner wall's border on the box) sits on that patch's silhouette, not out in the open.
    lowest, highest = _vertex_patch_range(faces, patch, len(vertices))
    alone = (lowest == highest) & (lowest >= 0)
    return PatchSetup(count, patch, cull, lowest, alone)


def remove_inner_shells(
    cleaned: clean.CleanResult,
    directions: int = tolerances.VISIBILITY_DIRECTIONS,
    pixels: int = tolerances.VISIBILITY_PIXELS,
) -> tuple[clean.CleanResult, InnerShellResult]:
    """``cleaned`` without its hidden patches (:func:`without_hidden`), the views drawn by
    the numba kernel (torch_inner_shells.remove_inner_shells draws them on a torch device)."""
    found = find_inner_shells(cleaned.vertices, cleaned.faces, directions, pixels,
                              cleaned.face_pairs)  # fmt: skip
    return without_hidden(cleaned, found), found


def without_hidden(cleaned: clean.CleanResult, found: InnerShellResult) -> clean.CleanResult:
    """``cleaned`` without ``found``'s hidden patches: faces, corner attributes and the
    vertices only they used dropped; the report gains ``inner_faces`` and ``inner_shells``."""
    report = {**cleaned.report, "inner_faces": found.hidden_faces,
              "inner_shells": found.hidden_patches}  # fmt: skip
    if not found.hidden.any():
        return dataclasses.replace(cleaned, report=report)
    keep = ~found.hidden
    vertices, faces, attributes = clean.compact_vertices(
        cleaned.vertices, cleaned.faces[keep], cleaned.attributes
    )
    corners = {name: values[keep] for name, values in cleaned.corner_attributes.items()}
    return clean.CleanResult(vertices, faces, attributes, corners, report)


def visible_from_outside(
    vertices: np.ndarray,
    faces: np.ndarray,
    directions: int,
    pixels: int,
    cull: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``directions`` orthographic views around the bounding sphere.

    ``cull`` (m,) bool marks faces that may be skipped when they face away from the view
    (those of closed, outward-wound patches: such a face is never the first surface a ray
    from outside meets, so skipping it changes no answer and halves the drawing; on a
    self-intersecting surface it could only let a ray reach further, so more is kept, never
    less).
    Returns seen (m,) bool: faces some view's pixel shows, and outside (n,) bool: vertices
    that some view projects onto an empty pixel.
    """
    seen = np.zeros(len(faces), dtype=np.bool_)
    outside = np.zeros(len(vertices), dtype=np.bool_)
    for seen_face, outside_vertex, _ in _visible_rounds(vertices, faces, directions, pixels, cull):
        seen |= seen_face
        outside |= outside_vertex
    return seen, outside


ROUND_VIEWS = 8  # views per round at least (a round is one call of the parallel kernel)


def spread_order(count: int) -> np.ndarray:
    """A permutation of :func:`view_directions`' indices whose every prefix is spread over
    the sphere (the lattice runs pole to pole; a golden-ratio stride through it does not)."""
    return np.argsort((np.arange(count) * 0.6180339887498949) % 1.0, kind="stable")


def _visible_rounds(
    vertices: np.ndarray,
    faces: np.ndarray,
    directions: int,
    pixels: int,
    cull: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """The views of :func:`visible_from_outside`, spread-out ones first, in rounds of one view
    per thread (at least ``ROUND_VIEWS``): per round, the faces seen and vertices outside in
    that round's views (arrays reused, so each round's answer is read before the next) and how
    many views it drew. The threads' buffers are made once for all rounds."""
    if cull is None:
        cull = np.zeros(len(faces), dtype=bool)
    # Culled faces carry their normal, the rest zero: one sequential read decides a back face
    # before its three vertices are fetched.
    pos = np.asarray(vertices, dtype=np.float64)
    centre, radius = bounding_sphere(pos)
    unit = (pos - centre) / radius
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    facing = _face_normals(unit, faces, cull)
    views = np.ascontiguousarray(view_directions(directions)[spread_order(directions)])
    threads = max(1, min(numba.get_num_threads(), directions))
    per_round = max(threads, ROUND_VIEWS)
    # Per thread: projected points, depths, face-id and depth images (fresh 10 MB buffers per
    # view cost more in page faults than the drawing).
    buffers = (
        np.empty((threads, len(unit), 2)), np.empty((threads, len(unit))),
        np.empty((threads, pixels, pixels), np.int32), np.empty((threads, pixels, pixels)),
    )  # fmt: skip
    seen = np.zeros(len(faces), dtype=np.bool_)
    outside = np.zeros(len(unit), dtype=np.bool_)
    for begin in range(0, directions, per_round):
        batch = np.ascontiguousarray(views[begin : begin + per_round])
        seen[:] = False
        outside[:] = False
        _draw_views(unit, faces, batch, pixels, facing, min(threads, len(batch)), seen, outside,
                    *buffers)  # fmt: skip
        yield seen, outside, len(batch)


def bounding_sphere(pos: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of the sphere around the bounding box of ``pos`` (n, 3) float64:
    the views' frame ((pos - centre) / radius lies in the unit ball)."""
    return box_sphere(*bounds(pos))


def box_sphere(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`bounding_sphere` from the box's corners (3,) float64."""
    return (low + high) / 2, max(float(np.linalg.norm(high - low)) / 2, 1e-12)


def view_frame(direction: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    """(e1, e2) of :func:`_project` for one direction (3,), in the same float64 arithmetic:
    the image axes of that view."""
    dx, dy, dz = (float(value) for value in direction)
    hx, hy, hz = (0.0, 1.0, 0.0) if abs(dy) < 0.9 else (1.0, 0.0, 0.0)
    e1x, e1y, e1z = hy * dz - hz * dy, hz * dx - hx * dz, hx * dy - hy * dx
    length = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    e1x, e1y, e1z = e1x / length, e1y / length, e1z / length
    e2x, e2y, e2z = dy * e1z - dz * e1y, dz * e1x - dx * e1z, dx * e1y - dy * e1x
    return (e1x, e1y, e1z), (e2x, e2y, e2z)


@numba.njit(cache=True, nogil=True)
def _face_normals(pos, faces, cull):
    """(m, 3) float32: each culled face's (unnormalised) normal, zero for the others."""
    out = np.zeros((faces.shape[0], 3), np.float32)
    for f in range(faces.shape[0]):
        if not cull[f]:
            continue
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        e1x, e1y, e1z = pos[b, 0] - pos[a, 0], pos[b, 1] - pos[a, 1], pos[b, 2] - pos[a, 2]
        e2x, e2y, e2z = pos[c, 0] - pos[a, 0], pos[c, 1] - pos[a, 1], pos[c, 2] - pos[a, 2]
        out[f, 0] = e1y * e2z - e1z * e2y
        out[f, 1] = e1z * e2x - e1x * e2z
        out[f, 2] = e1x * e2y - e1y * e2x
    return out


@numba.njit(cache=True, nogil=True)
def _vertex_patch_range(faces, patch, n):
    """Lowest and highest patch id (n,) among each vertex's faces (-1 for unused vertices)."""
    lowest = np.full(n, -1, np.int64)
    highest = np.full(n, -1, np.int64)
    for f in range(faces.shape[0]):
        p = patch[f]
        for k in range(3):
            v = faces[f, k]
            if lowest[v] < 0 or p < lowest[v]:
                lowest[v] = p
            highest[v] = max(highest[v], p)
    return lowest, highest


@numba.njit(cache=True, parallel=True)
def _draw_views(pos, faces, directions, pixels, facing, threads, seen, outside, all_points,
                all_depth, all_face_id, all_zbuf):  # fmt: skip
    """One orthographic depth + face-id image per direction. Each thread takes every
    ``threads``-th view and reuses its own buffers (``all_*[thread]``). ``seen`` and
    ``outside`` are only ever set to True, so the threads' unsynchronised writes cannot
    disagree."""
    for thread in numba.prange(threads):
        points, depth = all_points[thread], all_depth[thread]
        face_id, zbuf = all_face_id[thread], all_zbuf[thread]
        n = points.shape[0]
        for view in range(thread, directions.shape[0], threads):
            _project(pos, directions[view], pixels, points, depth)
            face_id[:] = -1
            zbuf[:] = np.inf
            _draw_depth(points, depth, faces, facing, directions[view], pixels, face_id, zbuf)
            for row in range(pixels):
                for col in range(pixels):
                    f = face_id[row, col]
                    if f >= 0:
                        seen[f] = True
            for i in range(n):  # points are in shifted pixel units: centre of (r, c) at (c, r)
                col = min(max(int(points[i, 0] + 0.5), 0), pixels - 1)
                row = min(max(int(points[i, 1] + 0.5), 0), pixels - 1)
                if face_id[row, col] < 0:
                    outside[i] = True


@numba.njit(cache=True, nogil=True, inline="always")
def _project(pos, direction, pixels, points, depth):
    """Orthographic projection along ``direction`` of the unit-sphere points ``pos`` (n, 3):
    points (n, 2) in pixel units shifted by half a pixel (pixel (r, c) has its centre at
    (c, r)), depth (n,) smaller nearer a viewer at +direction. The frame (e1, e2, d) is
    right-handed, so a face turned to the viewer has a positive 2D determinant."""
    dx, dy, dz = direction[0], direction[1], direction[2]
    hx, hy, hz = (0.0, 1.0, 0.0) if abs(dy) < 0.9 else (1.0, 0.0, 0.0)
    e1x, e1y, e1z = hy * dz - hz * dy, hz * dx - hx * dz, hx * dy - hy * dx
    length = np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    e1x, e1y, e1z = e1x / length, e1y / length, e1z / length
    e2x, e2y, e2z = dy * e1z - dz * e1y, dz * e1x - dx * e1z, dx * e1y - dy * e1x
    half = 0.5 * pixels
    for i in range(pos.shape[0]):
        x, y, z = pos[i, 0], pos[i, 1], pos[i, 2]
        points[i, 0] = half + half * (x * e1x + y * e1y + z * e1z) - 0.5
        points[i, 1] = half + half * (x * e2x + y * e2y + z * e2z) - 0.5
        depth[i] = -(x * dx + y * dy + z * dz)


@numba.njit(cache=True, nogil=True, inline="always")
def _draw_depth(points, depth, faces, facing, direction, size, face_id, zbuf):
    """raster.py's depth rasterisation (same pixel centres, same edge slack), specialised for
    this loop: a triangle is rejected from the pixel centres its bounds hold before anything
    else (most are: 800k faces on 512^2 pixels), and culled back faces are skipped."""
    dx, dy, dz = direction[0], direction[1], direction[2]
    for f in range(faces.shape[0]):
        if facing[f, 0] * dx + facing[f, 1] * dy + facing[f, 2] * dz < 0.0:
            continue  # a culled face turned away
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay = points[a, 0], points[a, 1]
        bx, by = points[b, 0], points[b, 1]
        cx, cy = points[c, 0], points[c, 1]
        col0, col1 = _centre_span(min(ax, bx, cx), max(ax, bx, cx), size)
        if col0 > col1:
            continue
        row0, row1 = _centre_span(min(ay, by, cy), max(ay, by, cy), size)
        if row0 > row1:
            continue
        det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        if det == 0.0:
            continue
        inv = 1.0 / det
        for row in range(row0, row1 + 1):
            py = float(row)
            for col in range(col0, col1 + 1):
                px = float(col)
                w1 = ((px - ax) * (cy - ay) - (cx - ax) * (py - ay)) * inv
                w2 = ((bx - ax) * (py - ay) - (px - ax) * (by - ay)) * inv
                w0 = 1.0 - w1 - w2
                if w0 < -_EDGE_EPS or w1 < -_EDGE_EPS or w2 < -_EDGE_EPS:
                    continue
                z = w0 * depth[a] + w1 * depth[b] + w2 * depth[c]
                if z < zbuf[row, col]:
                    zbuf[row, col] = z
                    face_id[row, col] = f


@numba.njit(cache=True, nogil=True, inline="always")
def _centre_span(low, high, size):
    """First and last integer in [low, high] (widened by a hair, clipped to the image); values
    are >= -0.5, so truncation is floor and a ceil is one comparison away."""
    low -= _SPAN_EPS
    first = int(low)
    if low > first:
        first += 1
    return max(first, 0), min(int(high + _SPAN_EPS), size - 1)


def _closed_outward(
    vertices: np.ndarray,
    faces: np.ndarray,
    patch: np.ndarray,
    count: int,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """(count,) bool: patches that are closed (every edge shared by exactly two of their faces,
    windings agreeing) and wound outward (positive volume). ``pairs`` as from
    :func:`adjacency.manifold_face_pairs`."""
    a, b, disagree = pairs
    edges = np.bincount(a, minlength=len(faces)) + np.bincount(b, minlength=len(faces))
    closed = np.ones(count, dtype=bool)
    np.logical_and.at(closed, patch, edges == 3)
    closed[patch[a[disagree]]] = False
    volume = clean.signed_volumes(vertices, faces)
    return closed & (np.bincount(patch, weights=volume, minlength=count) > 0)
