"""Stage 1, clean: make a raw model mesh a sound surface before anything else touches it.

Welds duplicate vertices, drops degenerate, zero-area and duplicate faces, removes floaters
(small disconnected pieces), makes the winding consistent with outward normals, and optionally
fills holes. Per-vertex attributes (colours, UVs) ride along as a dict of ``(n, k)`` arrays and
come out remapped. Everything is vectorised numpy or numba: this runs on 800k-face inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from backend.geometry import tolerances
from backend.geometry.adjacency import (
    bucket_scatter,
    chunk_count,
    face_components,
    manifold_face_pairs,
    vertex_faces,
)
from backend.geometry.bounds import bounds, extent

Attributes = dict[str, np.ndarray]
VertexFaces = tuple[np.ndarray, np.ndarray]  # adjacency.vertex_faces: (start, faces)


@dataclass
class CleanResult:
    """vertices (n, 3) float32, faces (m, 3) int64, attributes name -> (n, k), corner_attributes
    name -> (m, 3, k) (per face corner, e.g. UVs), and counts of what was fixed."""

    vertices: np.ndarray
    faces: np.ndarray
    attributes: Attributes
    corner_attributes: Attributes = field(default_factory=dict)
    report: dict[str, int] = field(default_factory=dict)
    # adjacency.manifold_face_pairs of ``faces`` (a, b, disagree), when clean had it at hand:
    # later steps (inner_shells) reuse it instead of walking 800k faces again.
    face_pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def bbox_diagonal(vertices: np.ndarray) -> float:
    """Length of the axis-aligned bounding-box diagonal of ``vertices`` (n, 3); 1.0 if empty."""
    if len(vertices) == 0:
        return 1.0
    diagonal = float(np.linalg.norm(extent(vertices)))
    return diagonal if diagonal > 0 else 1.0


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of each face: vertices (n, 3), faces (m, 3) -> (m,) float64."""
    areas = np.empty(len(faces))
    _face_measures(_as_f64(vertices), np.ascontiguousarray(faces, np.int64), areas, False)
    return areas


def signed_volumes(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed volume (x6) of the tetrahedron each face makes with the origin: (m,) float64."""
    volumes = np.empty(len(faces))
    _face_measures(_as_f64(vertices), np.ascontiguousarray(faces, np.int64), volumes, True)
    return volumes


def _as_f64(vertices: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vertices, dtype=np.float64)


@numba.njit(cache=True, nogil=True, parallel=True)
def _face_measures(vertices, faces, out, volume):
    # One compiled pass: numpy's cross product on 800k faces makes five temporaries. Faces
    # are independent: all cores, each face's arithmetic as on one.
    for f in numba.prange(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        ax, ay, az = vertices[a, 0], vertices[a, 1], vertices[a, 2]
        bx, by, bz = vertices[b, 0], vertices[b, 1], vertices[b, 2]
        cx, cy, cz = vertices[c, 0], vertices[c, 1], vertices[c, 2]
        if volume:  # a . (b x c)
            out[f] = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
            continue
        e1x, e1y, e1z = bx - ax, by - ay, bz - az
        e2x, e2y, e2z = cx - ax, cy - ay, cz - az
        nx, ny, nz = e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x
        out[f] = 0.5 * np.sqrt(nx * nx + ny * ny + nz * nz)


def weld_vertices(
    vertices: np.ndarray, faces: np.ndarray, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices on the same ``distance`` grid cell.

    vertices (n, 3), faces (m, k) -> (kept, faces): kept (n',) indices of the surviving vertices
    and the faces remapped (m, k).
    """
    low = bounds(vertices)[0] if len(vertices) else np.zeros(3)
    welded = _weld_sorted(vertices, faces, low, distance)
    if welded is not None:
        return welded
    cells = np.floor((vertices - low) / max(distance, 1e-30)).astype(np.int64)
    if len(cells) and cells.max() < 2**21:  # three 21-bit cells in one int64: a 1-D unique
        keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
        _, kept, new_index = np.unique(keys, return_index=True, return_inverse=True)
        return kept, new_index.reshape(-1)[faces]
    order = np.lexsort(cells.T[::-1])
    sorted_cells = cells[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = np.any(sorted_cells[1:] != sorted_cells[:-1], axis=1)
    group = np.cumsum(starts) - 1
    new_index = np.empty(len(vertices), dtype=np.int64)
    new_index[order] = group
    kept = order[starts]
    return kept, new_index[faces]


_CELL_BITS = 21  # three cells in one int64 key
_WELD_BUCKET_BITS = 9  # key ranges (buckets) of the parallel sort: up to 512


def _weld_sorted(
    vertices: np.ndarray, faces: np.ndarray, low: np.ndarray, distance: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """np.unique of the packed cell keys as a parallel sort: the same (kept, faces), or None
    where that form does not apply (empty, not float32/64 (n, 3), a cell outside 21 bits)."""
    dtype = vertices.dtype
    if len(vertices) == 0 or dtype not in (np.float32, np.float64) or vertices.shape[1:] != (3,):
        return None
    if faces.dtype.kind not in "iu":
        return None
    # numpy divides by the Python float in the vertices' dtype: the same scalar here.
    scale = dtype.type(max(distance, 1e-30))
    keys, top = _cell_keys(np.ascontiguousarray(vertices), low.astype(dtype), scale)
    if top < 0:
        return None
    shift = max(0, int(top).bit_length() - _WELD_BUCKET_BITS)
    flat = np.ascontiguousarray(faces).reshape(-1)
    kept, remapped = _unique_keys(keys, flat, shift, chunk_count(len(keys)))
    return kept, remapped.reshape(faces.shape)


@numba.njit(cache=True, nogil=True, parallel=True)
def _cell_keys(vertices, low, scale):
    # numpy's floor((v - low) / distance) bits, packed as three 21-bit cells; top: the largest
    # key, or -1 when a cell is negative or wider than 21 bits (not finite, or too fine a grid).
    n = vertices.shape[0]
    keys = np.empty(n, np.int64)
    bad = np.zeros(n, np.bool_)
    for i in numba.prange(n):
        key = 0
        for k in range(3):
            cell = np.floor((vertices[i, k] - low[k]) / scale)
            if not (cell >= 0 and cell < 2**_CELL_BITS):
                bad[i] = True
                cell = 0
            key = (key << _CELL_BITS) | np.int64(cell)
        keys[i] = key
    top = -1
    if not bad.any():
        top = keys.max()
    return keys, top


@numba.njit(cache=True, nogil=True, parallel=True)
def _unique_keys(keys, flat_faces, shift, chunks):
    # np.unique(keys, return_index, return_inverse) as a stable sort in two parallel passes:
    # keys into key ranges (per-chunk counts, then a scatter in index order), then each range
    # sorted on its own (stable), its distinct keys numbered from its offset.
    n = keys.shape[0]
    buckets = (keys.max() >> shift) + 1
    by_bucket, bucket_start = bucket_scatter(keys, buckets, shift, chunks)
    distinct = np.zeros(buckets + 1, np.int64)
    sorted_keys = np.empty(n, np.int64)
    for bucket in numba.prange(buckets):
        low, high = bucket_start[bucket], bucket_start[bucket + 1]
        for j in range(low, high):
            sorted_keys[j] = keys[by_bucket[j]]
        _stable_sort(sorted_keys[low:high], by_bucket[low:high])
        for j in range(low, high):
            distinct[bucket + 1] += j == low or sorted_keys[j] != sorted_keys[j - 1]
    for bucket in range(buckets):
        distinct[bucket + 1] += distinct[bucket]
    kept = np.empty(distinct[buckets], np.int64)
    new_index = np.empty(n, np.int64)
    for bucket in numba.prange(buckets):
        group = distinct[bucket] - 1
        for j in range(bucket_start[bucket], bucket_start[bucket + 1]):
            i = by_bucket[j]
            if j == bucket_start[bucket] or sorted_keys[j] != sorted_keys[j - 1]:
                group += 1
                kept[group] = i  # the first (lowest) index of its key, as np.unique's
            new_index[i] = group
    remapped = np.empty(flat_faces.shape[0], np.int64)
    for i in numba.prange(flat_faces.shape[0]):
        remapped[i] = new_index[flat_faces[i]]
    return kept, remapped


_SMALL = 16  # ranges this short are insertion-sorted


@numba.njit(cache=True, nogil=True)
def _stable_sort(keys, index):
    # Stable sort of (keys, index) pairs in place by key: a most-significant-digit radix sort
    # on the bits the range's keys differ in (the blob's cell keys cluster on grid planes), up
    # to 11 bits a step, short ranges by insertion. A merge sort took ~3x as long.
    n = keys.shape[0]
    buffer_k, buffer_i = np.empty_like(keys), np.empty_like(index)
    stack = [(0, n)]
    while len(stack):
        low, high = stack.pop()
        if high - low <= _SMALL:
            _insertion_sort(keys, index, low, high)
            continue
        differ = 0
        for j in range(low + 1, high):
            differ |= keys[j] ^ keys[low]
        if differ == 0:
            continue  # one key: index order already
        top = 0
        while differ >> top:
            top += 1
        size_bits = 1
        while (high - low) >> size_bits:
            size_bits += 1
        width = min(top, _DIGIT_BITS, size_bits)  # about one slot per key
        shift = top - width
        mask = (1 << width) - 1
        fill = np.zeros((1 << width) + 1, np.int64)
        for j in range(low, high):
            fill[((keys[j] >> shift) & mask) + 1] += 1
        fill[0] = low
        for d in range(1 << width):
            fill[d + 1] += fill[d]
        for d in range(1 << width):
            if fill[d + 1] - fill[d] > 1:
                stack.append((fill[d], fill[d + 1]))
        for j in range(low, high):
            d = (keys[j] >> shift) & mask
            buffer_k[fill[d]], buffer_i[fill[d]] = keys[j], index[j]
            fill[d] += 1
        keys[low:high] = buffer_k[low:high]
        index[low:high] = buffer_i[low:high]


_DIGIT_BITS = 11


@numba.njit(cache=True, nogil=True)
def _insertion_sort(keys, index, low, high):
    for j in range(low + 1, high):
        key, item, t = keys[j], index[j], j
        while t > low and keys[t - 1] > key:
            keys[t], index[t] = keys[t - 1], index[t - 1]
            t -= 1
        keys[t], index[t] = key, item


def repeated_vertex_mask(faces: np.ndarray) -> np.ndarray:
    """(m,) bool: faces that use one vertex twice."""
    return _repeats(np.ascontiguousarray(faces, np.int64))


@numba.njit(cache=True, nogil=True, parallel=True)
def _repeats(faces):
    # One pass on all cores (numpy's form makes five (m,) temporaries).
    out = np.empty(faces.shape[0], np.bool_)
    for f in numba.prange(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        out[f] = a == b or b == c or c == a
    return out


def degenerate_face_mask(vertices: np.ndarray, faces: np.ndarray, min_area: float) -> np.ndarray:
    """(m,) bool: faces that repeat a vertex or whose area is below ``min_area``."""
    return repeated_vertex_mask(faces) | (face_areas(vertices, faces) < min_area)


def collapse_zero_area_faces(
    vertices: np.ndarray, faces: np.ndarray, min_area: float
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the shortest edge of every zero-area face, so a closed surface stays closed.

    Deleting a needle or cap would open a slit; merging its shortest edge (nearly zero long on
    a needle) removes it and its neighbour across that edge instead. vertices (n, 3), faces
    (m, 3) -> (faces (m, 3) remapped, drop (m,) bool: faces that now repeat a vertex).
    """
    flat = face_areas(vertices, faces) < min_area
    if not flat.any():
        return faces, np.zeros(len(faces), dtype=bool)
    corners = vertices[faces[flat]].astype(np.float64)
    lengths = np.stack(
        [np.linalg.norm(corners[:, (k + 1) % 3] - corners[:, k], axis=1) for k in range(3)], axis=1
    )
    shortest = np.argmin(lengths, axis=1)
    rows = np.arange(len(shortest))
    a = faces[flat][rows, shortest]
    b = faces[flat][rows, (shortest + 1) % 3]
    target = np.arange(len(vertices))
    target[np.maximum(a, b)] = np.minimum(a, b)  # always to the lower index: no cycles
    while True:
        deeper = target[target]
        if np.array_equal(deeper, target):
            break
        target = deeper
    faces = target[faces]
    return faces, repeated_vertex_mask(faces)


def duplicate_face_mask(
    faces: np.ndarray, n_vertices: int | None = None, around: VertexFaces | None = None
) -> np.ndarray:
    """(m,) bool: faces to drop among those using the same three vertices.

    Copies with one winding keep their first; a pair wound both ways (a zero-volume fin) goes
    entirely. ``around``: :func:`vertex_faces` of ``faces``, when the caller has it.
    """
    if len(faces) == 0:
        return np.zeros(0, dtype=bool)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if around is None:
        n = max(int(n_vertices or 0), int(faces.max()) + 1)
        around = vertex_faces(faces, n)
    return _duplicate_mask(faces, *around)


@numba.njit(cache=True, nogil=True, parallel=True)
def _duplicate_mask(faces, start, around):
    # Copies of a face all hold its lowest vertex: each face finds its group among that
    # vertex's faces (no sort of the m face keys), so faces are independent.
    mask = np.empty(faces.shape[0], np.bool_)
    for f in numba.prange(faces.shape[0]):
        a, b, c = _sorted3(faces[f, 0], faces[f, 1], faces[f, 2])
        first, count, windings = f, 0, 0
        for j in range(start[a], start[a + 1]):
            g = around[j]
            if j > start[a] and around[j - 1] == g:
                continue  # listed twice (a repeated vertex)
            x, y, z = _sorted3(faces[g, 0], faces[g, 1], faces[g, 2])
            if x == a and y == b and z == c:
                first = min(first, g)
                count += 1
                windings += 1 if _even_winding(faces[g, 0], faces[g, 1], faces[g, 2], x) else 2
        # 1 per even copy, 2 per odd one: a sum that is a multiple of 3 reads as both windings
        # (the rule of the earlier np.unique version, kept exactly).
        mask[f] = first != f or (count > 1 and windings % 3 == 0)
    return mask


@numba.njit(cache=True, nogil=True)
def _sorted3(a, b, c):
    if a > b:
        a, b = b, a
    if b > c:
        b, c = c, b
    if a > b:
        a, b = b, a
    return a, b, c


@numba.njit(cache=True, nogil=True)
def _even_winding(a, b, c, lowest):
    # A rotation keeps the parity, a reversal flips it.
    if a == lowest:
        return b < c
    if b == lowest:
        return c < a
    return a < b


def floater_face_mask(
    vertices: np.ndarray,
    faces: np.ndarray,
    fraction: float,
    components: tuple[int, np.ndarray] | None = None,
) -> np.ndarray:
    """(m,) bool: faces of pieces whose area is below ``fraction`` of the largest piece's.

    ``components`` is :func:`face_components`'s answer when the caller already has it.
    """
    count, labels = components or face_components(faces, len(vertices))
    if count <= 1:
        return np.zeros(len(faces), dtype=bool)
    piece_area = np.bincount(labels, weights=face_areas(vertices, faces), minlength=count)
    small = piece_area < fraction * piece_area.max()
    return small[labels]


def orient_faces(
    vertices: np.ndarray,
    faces: np.ndarray,
    components: tuple[int, np.ndarray] | None = None,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Consistent winding per piece, then outward (positive signed volume) normals.

    vertices (n, 3), faces (m, 3) -> (faces (m, 3), flipped (m,) bool: reversed faces). Pieces
    that are not orientable keep the winding the walk gives them. ``components`` as in
    :func:`floater_face_mask` (turning faces over does not change them); ``pairs`` is
    :func:`manifold_face_pairs`'s answer when the caller has it.
    """
    if len(faces) == 0:
        return faces, np.zeros(0, dtype=bool)
    a, b, disagree = pairs or manifold_face_pairs(faces, len(vertices))
    flip = np.zeros(len(faces), dtype=bool)
    if disagree.any():
        flip = _propagate_flips(len(faces), a, b, disagree)
    faces = _turn_over(faces, flip)
    # Outward: a closed piece with negative signed volume is inside out.
    count, labels = components or face_components(faces, len(vertices))
    volume = signed_volumes(vertices, faces)
    inside_out = np.bincount(labels, weights=volume, minlength=count) < 0
    if not inside_out.any():
        return faces, flip
    turn = inside_out[labels]
    return _turn_over(faces, turn), flip ^ turn


def _turn_over(faces: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """(m, 3) contiguous faces with the ``turn`` ones reversed (no copy when none is)."""
    if not turn.any():
        return np.ascontiguousarray(faces)
    return np.ascontiguousarray(np.where(turn[:, None], faces[:, ::-1], faces))


def _propagate_flips(
    n_faces: int, a: np.ndarray, b: np.ndarray, disagree: np.ndarray
) -> np.ndarray:
    """Flip flags making every adjacent pair agree along a spanning forest (pointer jumping)."""
    # Here, not at the top: only a mesh with disagreeing windings pays scipy's import (~0.2 s).
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int32), (a, b)), (n_faces, n_faces)).tocsr()
    graph = graph + graph.T
    parent = np.arange(n_faces)
    _, labels = connected_components(graph, directed=False)
    roots = np.unique(labels, return_index=True)[1]
    for root in roots:
        _, predecessors = breadth_first_order(graph, root, directed=False)
        reached = predecessors >= 0
        parent[reached] = predecessors[reached]
    # Parity of the tree edge (face, parent): look the pair up among the adjacent pairs.
    pair_keys = np.concatenate([a * n_faces + b, b * n_faces + a])
    pair_flip = np.concatenate([disagree, disagree])
    order = np.argsort(pair_keys)
    pair_keys, pair_flip = pair_keys[order], pair_flip[order]
    query = np.arange(n_faces) * n_faces + parent
    hit = np.clip(np.searchsorted(pair_keys, query), 0, len(pair_keys) - 1)
    parity = np.where(pair_keys[hit] == query, pair_flip[hit], False)
    parity[parent == np.arange(n_faces)] = False
    while True:  # parity to the root by pointer jumping: O(m log depth)
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parity
        parity = parity ^ parity[parent]
        parent = grand


def boundary_loops(faces: np.ndarray, n_vertices: int) -> list[np.ndarray]:
    """Closed loops of boundary edges, each (k,) vertex indices in face winding order.

    Loops through a vertex with more than one outgoing boundary edge are skipped (ambiguous).
    """
    start = faces.reshape(-1)
    end = faces[:, [1, 2, 0]].reshape(-1)
    forward = start * np.int64(n_vertices) + end
    backward = end * np.int64(n_vertices) + start
    is_boundary = ~np.isin(forward, backward)
    b_start, b_end = start[is_boundary], end[is_boundary]
    if len(b_start) == 0:
        return []
    outgoing = np.bincount(b_start, minlength=n_vertices)
    following = np.full(n_vertices, -1, dtype=np.int64)
    following[b_start] = b_end
    visited = np.zeros(n_vertices, dtype=bool)
    loops = []
    for first in b_start:
        if visited[first]:
            continue
        loop, vertex, ok = [], first, True
        while not visited[vertex]:
            visited[vertex] = True
            loop.append(vertex)
            ok &= outgoing[vertex] == 1
            vertex = following[vertex]
            if vertex < 0:
                ok = False
                break
        if ok and vertex == first and len(loop) >= 3:
            loops.append(np.asarray(loop, dtype=np.int64))
    return loops


def fill_holes(
    vertices: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Close each boundary loop with a fan around a new centre vertex.

    Returns (vertices (n + h, 3), faces (m + f, 3), loops): loop i's centre is vertex n + i, so
    callers can average per-vertex attributes over ``loops[i]``.
    """
    loops = boundary_loops(faces, len(vertices))
    if not loops:
        return vertices, faces, []
    centres = np.stack([vertices[loop].mean(axis=0) for loop in loops]).astype(vertices.dtype)
    new_faces = []
    for i, loop in enumerate(loops):
        centre = np.full(len(loop), len(vertices) + i)
        # Boundary edge a->b of the mesh becomes b->a in the patch, so the winding agrees.
        new_faces.append(np.stack([np.roll(loop, -1), loop, centre], axis=1))
    return (
        np.vstack([vertices, centres]),
        np.vstack([faces, *new_faces]).astype(np.int64),
        loops,
    )


def clean_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    attributes: Attributes | None = None,
    corner_attributes: Attributes | None = None,
    *,
    floater_fraction: float = tolerances.FLOATER_FRACTION,
    fill_holes_enabled: bool = False,
) -> CleanResult:
    """Run every clean step. vertices (n, 3), faces (m, 3), attributes name -> (n, k),
    corner_attributes name -> (m, 3, k): follow their faces (dropped, reversed) through it."""
    attributes = dict(attributes or {})
    vertices = np.asarray(vertices, dtype=np.float32)
    faces = np.asarray(faces, dtype=np.int64)
    source_face = np.arange(len(faces))
    diagonal = bbox_diagonal(vertices)
    report: dict[str, int] = {}
    kept, faces = weld_vertices(vertices, faces, tolerances.WELD_DISTANCE * diagonal)
    report["welded_vertices"] = len(vertices) - len(kept)
    vertices = _take_rows(vertices, kept)
    attributes = {name: _take_rows(values, kept) for name, values in attributes.items()}
    repeated = repeated_vertex_mask(faces)
    faces, source_face = _without(repeated, faces, source_face)
    faces, merged = collapse_zero_area_faces(vertices, faces, tolerances.ZERO_AREA * diagonal**2)
    faces, source_face = _without(merged, faces, source_face)
    report["degenerate_faces"] = int(repeated.sum() + merged.sum())
    around = vertex_faces(faces, len(vertices))
    drop = duplicate_face_mask(faces, len(vertices), around)
    report["duplicate_faces"] = int(drop.sum())
    faces, source_face = _without(drop, faces, source_face)
    count, labels = face_components(faces, len(vertices))
    if floater_fraction > 0:
        floaters = floater_face_mask(vertices, faces, floater_fraction, (count, labels))
        report["floater_faces"] = int(floaters.sum())
        faces, source_face, labels = _without(floaters, faces, source_face, labels)
        drop = np.append(drop, floaters)
    # The faces around each vertex still hold when no face went since they were listed.
    around = None if drop.any() else around
    pairs = manifold_face_pairs(faces, len(vertices), around) if len(faces) else None
    faces, flipped = orient_faces(vertices, faces, (count, labels), pairs)
    if pairs is not None and flipped.any():  # turning faces over changes only who disagrees
        pairs = (pairs[0], pairs[1], pairs[2] ^ flipped[pairs[0]] ^ flipped[pairs[1]])
    report["flipped_faces"] = int(flipped.sum())
    corners = {}
    for name, values in (corner_attributes or {}).items():
        picked = values[source_face]
        picked[flipped] = picked[flipped][:, ::-1]
        corners[name] = picked
    if fill_holes_enabled:
        before = len(faces)
        vertices, faces, loops = fill_holes(vertices, faces)
        report["holes_filled"] = len(loops)
        for name, values in attributes.items():
            extra = [values[loop].mean(axis=0) for loop in loops]
            if extra:
                attributes[name] = np.vstack([values, np.stack(extra).astype(values.dtype)])
        for name, values in corners.items():
            patch = np.zeros((len(faces) - before, *values.shape[1:]), dtype=values.dtype)
            corners[name] = np.concatenate([values, patch])
    vertices, faces, attributes = compact_vertices(vertices, faces, attributes)
    known_pairs = None if fill_holes_enabled else pairs  # the patches' faces are not in them
    return CleanResult(vertices, faces, attributes, corners, report, known_pairs)


def _without(drop: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """``array[~drop]`` of each (m, ...) int64 array, rows compacted on all cores."""
    if not drop.any():
        return arrays
    chunks = chunk_count(len(drop))
    return tuple(
        _keep_rows(a.reshape(len(a), -1), drop, chunks).reshape(-1, *a.shape[1:]) for a in arrays
    )


@numba.njit(cache=True, nogil=True, parallel=True)
def _keep_rows(values, drop, chunks):
    # Per-chunk counts, then each chunk writes its kept rows from its offset: row order kept.
    m = drop.shape[0]
    offsets = np.zeros(chunks + 1, np.int64)
    for c in numba.prange(chunks):
        kept = 0
        for f in range(c * m // chunks, (c + 1) * m // chunks):
            kept += not drop[f]
        offsets[c + 1] = kept
    for c in range(chunks):
        offsets[c + 1] += offsets[c]
    out = np.empty((offsets[chunks], values.shape[1]), values.dtype)
    for c in numba.prange(chunks):
        row = offsets[c]
        for f in range(c * m // chunks, (c + 1) * m // chunks):
            if not drop[f]:
                for k in range(values.shape[1]):
                    out[row, k] = values[f, k]
                row += 1
    return out


def _take_rows(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` (rows of an (n, ...) array by (k,) int64 indices) on all cores."""
    values = np.asarray(values)
    if values.ndim == 0 or values.dtype.kind not in "biuf":
        return values[index]
    rows = np.ascontiguousarray(values).reshape(len(values), -1)
    taken = _gather_rows(rows, np.ascontiguousarray(index, np.int64))
    return taken.reshape(len(index), *values.shape[1:])


@numba.njit(cache=True, nogil=True, parallel=True)
def _gather_rows(rows, index):
    out = np.empty((index.shape[0], rows.shape[1]), rows.dtype)
    for i in numba.prange(index.shape[0]):
        for k in range(rows.shape[1]):
            out[i, k] = rows[index[i], k]
    return out


def split_corners(
    vertices: np.ndarray, faces: np.ndarray, corner_values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split vertices wherever their corners disagree on ``corner_values`` (m, 3, k), e.g. UVs.

    Returns (faces (m, 3) over the split vertices, values (n', k), source (n',) index of each
    split vertex in ``vertices`` (n, 3)).
    """
    flat = corner_values.reshape(len(faces) * 3, -1)
    keys = np.column_stack([faces.reshape(-1, 1).astype(np.float64), flat.astype(np.float64)])
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return inverse.reshape(-1, 3).astype(np.int64), flat[first], faces.reshape(-1)[first]


def compact_vertices(
    vertices: np.ndarray, faces: np.ndarray, attributes: Attributes
) -> tuple[np.ndarray, np.ndarray, Attributes]:
    """Drop vertices no face uses; returns new (vertices, faces, attributes)."""
    used = _used_vertices(np.ascontiguousarray(faces, np.int64).reshape(-1), len(vertices))
    if used.all():
        return vertices, faces, attributes
    new_index = np.cumsum(used) - 1
    return (
        vertices[used],
        new_index[faces],
        {name: values[used] for name, values in attributes.items()},
    )


@numba.njit(cache=True, nogil=True, parallel=True)
def _used_vertices(corners, n):
    # used[corners] = True on all cores: racing writes all store True.
    used = np.zeros(n, np.bool_)
    for i in numba.prange(corners.shape[0]):
        used[corners[i]] = True
    return used
