"""UV packing: charts placed in a square atlas by their rasterised shapes, not their boxes.

Every chart is rasterised conservatively onto a grid whose cell is one padding width of the
output texture, grown by one cell, and placed (largest first) at the position and quarter turn
that keeps the atlas smallest, scanning from the bottom-left. A chart can sit inside another's
concavity or hole, which box packing cannot do. Quarter turns are rotations, never mirrors, so
the unwrap's "no flipped UVs" holds. Grown footprints never overlap: charts keep at least two
padding widths between them and one to the atlas border. Compiled with numba (cached on disk).
"""

from __future__ import annotations

import numba
import numpy as np
from numba.typed import List

UTILIZATION_GUESS = 0.6  # first guess of the packed share, to size the grid before packing
MAX_GRID_CELLS = 512  # finer grids pack a little tighter but cost time as the square
GROW_CELLS = 1  # each footprint is grown by this many cells (one padding width)
MAX_SHAPE_CHARTS = 1000  # above this (noise-like meshes) charts are packed by their boxes


def pack_charts(
    corners: np.ndarray, chart: np.ndarray, n_charts: int, texture_size: int, padding_px: int
) -> np.ndarray:
    """Place charts in the unit square at one texel density with ``padding_px`` around each.

    corners (m, 3, 2) chart-plane coordinates (v up), chart (m,) int chart id per face ->
    (m, 3, 2) UVs in the glTF convention (v down). By shape; by box when there are more
    than ``MAX_SHAPE_CHARTS`` charts or the padding cannot be kept on the grid.
    """
    if 0 < n_charts <= MAX_SHAPE_CHARTS:
        packed = pack_shapes(corners, chart, n_charts, texture_size, padding_px)
        if packed is not None:
            return packed
    return pack_boxes(corners, chart, n_charts, texture_size, padding_px)


def pack_shapes(
    corners: np.ndarray, chart: np.ndarray, n_charts: int, texture_size: int, padding_px: int
) -> np.ndarray | None:
    """:func:`pack_charts` by the charts' rasterised shapes; None if no grid within
    ``MAX_GRID_CELLS`` keeps ``padding_px`` (too many charts for the texture size)."""
    order, starts, sorted_corners, areas = _by_chart(
        np.ascontiguousarray(corners), np.ascontiguousarray(chart), n_charts
    )
    chart_area = np.add.reduceat(areas, starts[:-1])
    placing = np.argsort(-chart_area, kind="stable").astype(np.int64)
    flat = sorted_corners.reshape(-1, 2)
    corner_starts = starts[:-1] * 3
    extent = np.maximum.reduceat(flat, corner_starts) - np.minimum.reduceat(flat, corner_starts)
    # A cell is at least one padding width of the final texture: the atlas may be at most this
    # many cells wide.
    grid = min(texture_size / max(padding_px, 1), MAX_GRID_CELLS)
    share, fill = UTILIZATION_GUESS, 0.3
    for attempt in range(8):
        cell = _cell_size(chart_area, extent.sum(axis=1), share * grid**2)
        turn, offset, low, box, side = _place_all(
            sorted_corners, starts, placing, cell, GROW_CELLS, fill
        )
        if side < 0:
            fill /= 2
        elif side > grid or (attempt == 0 and side < 0.8 * grid):
            # Cells under one padding width, or far bigger than needed: rescale the grid.
            share *= (grid / side) ** 2 * 0.97
        else:
            break
    else:
        return None
    return _to_atlas(
        sorted_corners, starts, order, turn, offset, low, box, cell, GROW_CELLS, float(side)
    )


@numba.njit(cache=True, nogil=True)
def _by_chart(corners, chart, n_charts):
    """Faces stably sorted by chart: the order (m,), each chart's first place (c + 1,), the
    sorted corners (m, 3, 2) float64 and their absolute areas (m,)."""
    starts = np.zeros(n_charts + 1, np.int64)
    for f in range(chart.shape[0]):
        starts[chart[f] + 1] += 1
    for c in range(n_charts):
        starts[c + 1] += starts[c]
    fill = starts[:-1].copy()
    order = np.empty(chart.shape[0], np.int64)
    for f in range(chart.shape[0]):
        order[fill[chart[f]]] = f
        fill[chart[f]] += 1
    placed = np.empty((order.shape[0], 3, 2))
    areas = np.empty(order.shape[0])
    for i in range(order.shape[0]):
        for k in range(3):
            for a in range(2):
                placed[i, k, a] = np.float64(corners[order[i], k, a])
        e1x, e1y = placed[i, 1, 0] - placed[i, 0, 0], placed[i, 1, 1] - placed[i, 0, 1]
        e2x, e2y = placed[i, 2, 0] - placed[i, 0, 0], placed[i, 2, 1] - placed[i, 0, 1]
        areas[i] = 0.5 * np.abs(e1x * e2y - e1y * e2x)
    return order, starts, placed, areas


def pack_boxes(
    corners: np.ndarray, chart: np.ndarray, n_charts: int, texture_size: int, padding_px: int
) -> np.ndarray:
    """Like :func:`pack_charts`, by the charts' boxes: shelf packing by decreasing height,
    the shelf width searched so the atlas is square. Fast whatever the chart count."""
    flat = corners.reshape(-1, 2)
    owner = np.repeat(chart, 3)
    low = np.full((n_charts, 2), np.inf)
    high = np.full((n_charts, 2), -np.inf)
    np.minimum.at(low, owner, flat)
    np.maximum.at(high, owner, flat)
    size = high - low
    side = np.sqrt(np.sum(size[:, 0] * size[:, 1]) / 0.75)
    for _ in range(3):  # padding depends on the final scale: settle it in a few rounds
        pad = 2.0 * padding_px / texture_size * side
        offsets, side = _shelf_pack(size + pad)
    offsets = offsets + pad / 2
    placed = flat - low[owner] + offsets[owner]
    uv = placed / side
    uv[:, 1] = 1.0 - uv[:, 1]
    return uv.reshape(-1, 3, 2)


def _shelf_pack(size: np.ndarray) -> tuple[np.ndarray, float]:
    """Lower-left corners (c, 2) of boxes ``size`` (c, 2), and the side of their square."""
    order = np.argsort(-size[:, 1], kind="stable")
    total = float(np.sum(size[:, 0] * size[:, 1]))
    widest = float(size[:, 0].max())
    best: tuple[float, np.ndarray] | None = None
    for stretch in (1.0, 1.04, 1.08, 1.12, 1.17, 1.22, 1.3, 1.4):
        offsets, side = _shelves(size, order, max(np.sqrt(total) * stretch, widest))
        if best is None or side < best[0]:
            best = (side, offsets)
    assert best is not None
    return best[1], best[0]


@numba.njit(cache=True, nogil=True)
def _shelves(size, order, width):
    """Boxes in ``order`` left to right on shelves ``width`` wide: corners (c, 2), side."""
    offsets = np.zeros_like(size)
    x = y = shelf = right = 0.0
    for index in order:
        w, h = size[index, 0], size[index, 1]
        if x + w > width:
            x, y, shelf = 0.0, y + shelf, 0.0
        offsets[index, 0], offsets[index, 1] = x, y
        x += w
        shelf = max(shelf, h)
        right = max(right, x)
    return offsets, max(right, y + shelf)


def _cell_size(area: np.ndarray, half_perimeter: np.ndarray, cells: float) -> float:
    """The cell size at which the charts' grown footprints cover about ``cells`` cells.

    area (c,) and half_perimeter (c,) (box width + height) per chart, in chart units. A
    footprint is the chart's area plus a rim of (2 * grow + 1) cells along its box, at least a
    (2 * grow + 1)^2 square, so small charts cost cells whatever the scale.
    """
    rim = 2 * GROW_CELLS + 1
    low, high = 1e-12, 1e12
    for _ in range(100):  # bisection on a log scale: the count falls as the cell grows
        mid = np.sqrt(low * high)
        count = np.sum(area / mid**2 + half_perimeter / mid * rim + rim**2)
        was = low, high
        low, high = (mid, high) if count > cells else (low, mid)
        if (low, high) == was:  # settled: every further round would repeat this one
            break
    return float(high)


@numba.njit(cache=True, nogil=True, inline="always")
def _turn(u, v, k, cols, rows):
    """Point (u, v) of a cols x rows box turned k quarter turns counter-clockwise about the
    box, then moved back to the origin (a rotation, never a mirror)."""
    if k == 0:
        return u, v
    if k == 1:
        return rows - v, u
    if k == 2:
        return cols - u, rows - v
    return v, cols - u


@numba.njit(cache=True, nogil=True)
def _footprint(corners, first, last, cell, grow):
    """Grown conservative raster of one chart: (rows, cols) bool, row = v up, and the chart's
    lower-left corner in chart units."""
    low_x = low_y = np.inf
    high_x = high_y = -np.inf
    for f in range(first, last):
        for c in range(3):
            x, y = corners[f, c, 0], corners[f, c, 1]
            low_x, low_y = min(low_x, x), min(low_y, y)
            high_x, high_y = max(high_x, x), max(high_y, y)
    cols = int(np.ceil((high_x - low_x) / cell)) + 1 + 2 * grow
    rows = int(np.ceil((high_y - low_y) / cell)) + 1 + 2 * grow
    shape = np.zeros((rows, cols), np.bool_)
    px = np.empty(3)
    py = np.empty(3)
    for f in range(first, last):
        for c in range(3):
            px[c] = (corners[f, c, 0] - low_x) / cell + grow
            py[c] = (corners[f, c, 1] - low_y) / cell + grow
        _raster_triangle(shape, px, py)
    return _grow(shape, grow), low_x, low_y


@numba.njit(cache=True, nogil=True, inline="always")  # per face: no call
def _raster_triangle(shape, px, py):
    """Set the cells of ``shape`` that triangle (px, py) (in cells) touches.

    A cell is outside the triangle if all four of its corners lie outside one edge (separating
    axis test; a degenerate triangle keeps its box). The rounded edge function is monotone
    along x and along y, so the corner furthest inside decides for all four, and each row's
    inside cells are one stretch: found from its two ends, filled between.
    """
    twice_area = (px[1] - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (py[1] - py[0])
    sign = 1.0 if twice_area >= 0 else -1.0
    c0, c1 = int(np.floor(px.min())), int(np.floor(px.max()))
    r0, r1 = int(np.floor(py.min())), int(np.floor(py.max()))
    if twice_area == 0.0:
        shape[r0 : r1 + 1, c0 : c1 + 1] = True
        return
    ax0, ay0, dx0, dy0, ox0, oy0 = _edge(px, py, 0, sign)
    ax1, ay1, dx1, dy1, ox1, oy1 = _edge(px, py, 1, sign)
    ax2, ay2, dx2, dy2, ox2, oy2 = _edge(px, py, 2, sign)
    for r in range(r0, r1 + 1):
        # Per edge, the row's share of its edge function at the cell corner furthest inside.
        t0 = dx0 * ((r + oy0) - ay0)
        t1 = dx1 * ((r + oy1) - ay1)
        t2 = dx2 * ((r + oy2) - ay2)
        left = c0
        while left <= c1 and (
            sign * (t0 - dy0 * ((left + ox0) - ax0)) < 0
            or sign * (t1 - dy1 * ((left + ox1) - ax1)) < 0
            or sign * (t2 - dy2 * ((left + ox2) - ax2)) < 0
        ):
            left += 1
        right = c1
        while right > left and (
            sign * (t0 - dy0 * ((right + ox0) - ax0)) < 0
            or sign * (t1 - dy1 * ((right + ox1) - ax1)) < 0
            or sign * (t2 - dy2 * ((right + ox2) - ax2)) < 0
        ):
            right -= 1
        for q in range(left, right + 1):
            shape[r, q] = True


@numba.njit(cache=True, nogil=True, inline="always")
def _edge(px, py, e, sign):
    """Edge e of a triangle: its start, direction and the cell corner (0 or 1 along x, y)
    furthest inside it."""
    ax, ay = px[e], py[e]
    dx, dy = px[(e + 1) % 3] - ax, py[(e + 1) % 3] - ay
    return ax, ay, dx, dy, 1 if -sign * dy > 0 else 0, 1 if sign * dx > 0 else 0


@numba.njit(cache=True, nogil=True)
def _grow(shape, radius):
    """Chebyshev dilation of a bool image by ``radius`` cells (two separable passes)."""
    rows, cols = shape.shape
    wide = np.zeros_like(shape)
    for r in range(rows):
        for q in range(cols):
            if shape[r, q]:
                for d in range(max(q - radius, 0), min(q + radius + 1, cols)):
                    wide[r, d] = True
    out = np.zeros_like(shape)
    for r in range(rows):
        for q in range(cols):
            if wide[r, q]:
                for d in range(max(r - radius, 0), min(r + radius + 1, rows)):
                    out[d, q] = True
    return out


@numba.njit(cache=True, nogil=True)
def _runs(shape):
    """Horizontal runs of set cells: (n, 3) int64 rows of (row, first col, last col), by row
    then col."""
    rows, cols = shape.shape
    n = 0
    for r in range(rows):
        for q in range(cols):
            n += shape[r, q] and (q == 0 or not shape[r, q - 1])
    out = np.empty((n, 3), np.int64)
    n = 0
    for r in range(rows):
        q = 0
        while q < cols:
            if shape[r, q]:
                s = q
                while q < cols and shape[r, q]:
                    q += 1
                out[n, 0], out[n, 1], out[n, 2] = r, s, q - 1
                n += 1
            q += 1
    return out


@numba.njit(cache=True, nogil=True)
def _half_turned(runs, rows, cols):
    """The runs of a rows x cols footprint turned by two quarter turns (like :func:`_turn`),
    by row then col."""
    n = runs.shape[0]
    out = np.empty_like(runs)
    for i in range(n):
        r, s, e = runs[n - 1 - i, 0], runs[n - 1 - i, 1], runs[n - 1 - i, 2]
        out[i, 0], out[i, 1], out[i, 2] = rows - 1 - r, cols - 1 - e, cols - 1 - s
    return out


@numba.njit(cache=True, nogil=True)
def _turned_runs(shape):
    """The runs of the footprint at each of its four quarter turns (see :func:`_turn`)."""
    rows, cols = shape.shape
    straight = _runs(shape)
    quarter = _runs(np.ascontiguousarray(shape[::-1].T))  # out[q, rows - 1 - r] = shape[r, q]
    # A tuple, not a typed List: as quick to index, far quicker to compile.
    return straight, quarter, _half_turned(straight, rows, cols), _half_turned(quarter, cols, rows)


@numba.njit(cache=True, nogil=True)
def _longest_first(runs):
    """The runs, longest first (a counting sort): the order to probe a position in. A long run
    meets a taken cell sooner and skips further past it; the order changes no result."""
    longest = 0
    for i in range(runs.shape[0]):
        longest = max(longest, runs[i, 2] - runs[i, 1] + 1)
    start = np.zeros(longest + 2, np.int64)
    for i in range(runs.shape[0]):
        start[longest - (runs[i, 2] - runs[i, 1] + 1) + 1] += 1
    for k in range(longest + 1):
        start[k + 1] += start[k]
    out = np.empty_like(runs)
    for i in range(runs.shape[0]):
        slot = longest - (runs[i, 2] - runs[i, 1] + 1)
        out[start[slot]] = runs[i]
        start[slot] += 1
    return out


@numba.njit(cache=True, nogil=True)
def _blocked(last_taken, runs, x, y):
    """0 if the runs fit at (x, y), else how far right the next position worth testing is:
    past the rightmost taken cell under the first run that hits one."""
    for i in range(runs.shape[0]):
        first = x + runs[i, 1]
        hit = last_taken[y + runs[i, 0], x + runs[i, 2]]
        if hit >= first:
            return hit - first + 1
    return 0


@numba.njit(cache=True, nogil=True)
def _best_position(last_taken, widest, crowding, runs, rows, cols, width, height, best):
    """Scan for the free position that gives the smallest atlas (then the smallest
    width + height, then bottom-left); ``best`` (side, perimeter, x, y) is the one to beat.

    Side and perimeter never shrink as x or y grow, so a row ends at its first fit, and the
    scan at the first row whose leftmost position cannot win. ``crowding``: rows may lack a
    free stretch as long as a run (``widest`` is kept up to date only then).
    """
    size = last_taken.shape[0]
    found = False
    for y in range(0, size - rows + 1):
        new_w, new_h = max(width, cols), max(height, y + rows)
        side, perimeter = max(new_w, new_h), new_w + new_h
        if side > best[0] or (side == best[0] and perimeter >= best[1]):
            break
        crowded = False  # a row without a free stretch as long as its run: not here
        if crowding:
            for i in range(runs.shape[0]):
                if widest[y + runs[i, 0]] < runs[i, 2] - runs[i, 1] + 1:
                    crowded = True
                    break
        if crowded:
            continue
        x = 0
        while x <= size - cols:
            new_w = max(width, x + cols)
            side, perimeter = max(new_w, new_h), new_w + new_h
            if side > best[0] or (side == best[0] and perimeter >= best[1]):
                break
            skip = _blocked(last_taken, runs, x, y)
            if skip == 0:
                best[0], best[1], best[2], best[3] = side, perimeter, x, y
                found = True
                break
            x += skip
    return found


@numba.njit(cache=True, nogil=True)
def _take(last_taken, widest, crowding, runs, x, y):
    """Mark a placed footprint (its runs) in the per-row index of the rightmost taken cell,
    and, when ``crowding``, refresh the longest free stretch of the rows it covers."""
    size = last_taken.shape[1]
    # Right to left: a run's index entries reach right up to the next taken cell, which a run
    # further right has already marked.
    for i in range(runs.shape[0] - 1, -1, -1):
        r = y + runs[i, 0]
        first, last = x + runs[i, 1], x + runs[i, 2]
        for q in range(first, last + 1):
            last_taken[r, q] = q
        if last_taken[r, size - 1] <= last:  # nothing taken to its right: fill to the end
            last_taken[r, last + 1 :] = last
        else:
            q = last + 1
            while last_taken[r, q] < last:
                last_taken[r, q] = last
                q += 1
    if crowding:
        for i in range(runs.shape[0]):
            _refresh_widest(last_taken, widest, y + runs[i, 0])


@numba.njit(cache=True, nogil=True)
def _refresh_widest(last_taken, widest, r):
    """Longest stretch of free cells in row r, from its rightmost-taken index."""
    longest = 0
    for q in range(last_taken.shape[1]):
        longest = max(longest, q - last_taken[r, q])
    widest[r] = longest


@numba.njit(cache=True, nogil=True)
def _place_all(corners, starts, placing, cell, grow, fill):
    """Quarter turn (c,), offset (c, 2) in cells, lower-left corner (c, 2) and footprint size
    (c, 2) per chart, and the atlas side in cells (-1 if a canvas sized for packing share
    ``fill`` was too small)."""
    n_charts = starts.shape[0] - 1
    total = 0.0
    longest = 0
    shapes = List()
    low = np.zeros((n_charts, 2))
    box = np.zeros((n_charts, 2), np.int64)
    for c in range(n_charts):
        shape, low[c, 0], low[c, 1] = _footprint(corners, starts[c], starts[c + 1], cell, grow)
        shapes.append(shape)
        box[c, 0], box[c, 1] = shape.shape[1], shape.shape[0]
        total += shape.sum()
        longest = max(longest, shape.shape[0], shape.shape[1])
    size = int(np.sqrt(total / fill) + longest) + 4
    last_taken = np.full((size, size), -1, np.int32)  # per row: rightmost taken cell <= col
    widest = np.full(size, size, np.int64)  # per row: longest stretch of free cells
    # Every row is free right of the atlas: while that stretch is as long as any footprint,
    # no row is too crowded for a run, and ``widest`` need not be kept.
    crowding = False
    turn = np.zeros(n_charts, np.int64)
    offset = np.zeros((n_charts, 2), np.int64)
    width = height = 0
    for c in placing:
        if not crowding and size - width < longest:
            crowding = True
            for r in range(size):
                _refresh_widest(last_taken, widest, r)
        best = np.array([1 << 40, 1 << 40, 0, 0], np.int64)
        turned = _turned_runs(shapes[c])
        for k in range(4):
            rows, cols = box[c, 1 - k % 2], box[c, k % 2]
            probe = _longest_first(turned[k])
            if _best_position(last_taken, widest, crowding, probe, rows, cols, width, height, best):
                turn[c] = k
        if best[0] == 1 << 40:
            return turn, offset, low, box, -1  # the canvas is too small: the caller retries
        x, y = best[2], best[3]
        offset[c, 0], offset[c, 1] = x, y
        _take(last_taken, widest, crowding, turned[turn[c]], x, y)
        rows, cols = box[c, 1 - turn[c] % 2], box[c, turn[c] % 2]
        width, height = max(width, x + cols), max(height, y + rows)
    return turn, offset, low, box, max(width, height)


@numba.njit(cache=True, nogil=True)
def _to_atlas(corners, starts, order, turn, offset, low, box, cell, grow, side):
    """Every corner's UV (m, 3, 2), glTF convention (v down), from the placement; sorted
    face f is face order[f] of the output."""
    out = np.empty_like(corners)
    for c in range(starts.shape[0] - 1):
        for f in range(starts[c], starts[c + 1]):
            for k in range(3):
                u = (corners[f, k, 0] - low[c, 0]) / cell + grow
                v = (corners[f, k, 1] - low[c, 1]) / cell + grow
                u, v = _turn(u, v, turn[c], box[c, 0], box[c, 1])
                out[order[f], k, 0] = (u + offset[c, 0]) / side
                out[order[f], k, 1] = 1.0 - (v + offset[c, 1]) / side
    return out
