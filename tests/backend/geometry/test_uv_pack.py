"""UV packing: shapes nest tighter than boxes, padding holds between charts and at the border,
quarter turns never mirror, and too many charts fall back to box packing."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, decimate, raster, uv, uv_pack


@pytest.fixture(scope="module")
def charts(blob_mesh):
    cleaned = clean.clean_mesh(*blob_mesh)
    reduced = decimate.decimate(cleaned.vertices, cleaned.faces, 4000)
    vertices, faces = reduced.vertices, reduced.faces
    normals, _ = uv.unit_face_normals(vertices, faces)
    chart, axes = uv.segment_charts(normals, faces, len(vertices))
    return uv.project_charts(vertices, faces, chart, axes), chart, len(axes)


def _utilization(packed: np.ndarray) -> float:
    faces = np.arange(packed.shape[0] * 3).reshape(-1, 3)
    return float(np.abs(uv.uv_signed_areas(packed.reshape(-1, 2), faces)).sum())


def test_shapes_pack_tighter_than_boxes(charts):
    corners, chart, n_charts = charts
    by_shape = uv_pack.pack_shapes(corners, chart, n_charts, 1024, 4)
    assert by_shape is not None
    by_box = uv_pack.pack_boxes(corners, chart, n_charts, 1024, 4)
    assert _utilization(by_shape) > _utilization(by_box) + 0.08
    assert _utilization(by_shape) > 0.5


@pytest.mark.parametrize("pack", [uv_pack.pack_shapes, uv_pack.pack_boxes])
@pytest.mark.parametrize("size", [256, 512])
def test_padding_between_charts_and_to_the_border(charts, pack, size):
    corners, chart, n_charts = charts
    padding = 4
    packed = pack(corners, chart, n_charts, size, padding)
    faces = np.arange(len(chart) * 3).reshape(-1, 3)
    points = packed.reshape(-1, 2)
    assert uv.count_flipped(points, faces) == 0  # quarter turns are rotations
    face_id, _ = raster.rasterize(points, faces, size, size)
    assert (face_id >= 0).sum() > 0.25 * size * size
    owner = np.where(face_id >= 0, chart[np.maximum(face_id, 0)], -1)
    # Every chart keeps `padding` texels to itself: two charts' texels are more than
    # 2 * padding apart along x or y, and no texel lies within padding - 1 of the border.
    reach = 2 * padding
    for dr in range(0, reach + 1):
        for dc in range(-reach, reach + 1):
            a = owner[dr:, max(dc, 0) : size + min(dc, 0)]
            b = owner[: size - dr, max(-dc, 0) : size - max(dc, 0)]
            assert not np.any((a >= 0) & (b >= 0) & (a != b)), (dr, dc)
    rim = padding - 1
    taken = face_id >= 0
    assert not (taken[:rim].any() or taken[-rim:].any() or taken[:, :rim].any())
    assert not taken[:, -rim:].any()


def test_too_many_charts_for_the_texture_fall_back_to_boxes():
    rng = np.random.default_rng(3)
    triangles = rng.random((400, 3, 2))  # 400 one-face charts, turned counter-clockwise
    edge1, edge2 = triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]
    clockwise = edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0] < 0
    triangles[clockwise] = triangles[clockwise][:, ::-1]
    chart = np.arange(400)
    # 64 px with 4 px padding is a 16 x 16 grid: 400 charts of 3 x 3 cells cannot fit.
    assert uv_pack.pack_shapes(triangles, chart, 400, 64, 4) is None
    packed = uv_pack.pack_charts(triangles, chart, 400, 64, 4)
    assert packed.min() >= 0.0 and packed.max() <= 1.0
    assert uv.count_flipped(packed.reshape(-1, 2), np.arange(1200).reshape(-1, 3)) == 0
    # With room enough the same charts are packed by shape.
    by_shape = uv_pack.pack_shapes(triangles, chart, 400, 4096, 4)
    assert by_shape is not None and _utilization(by_shape) > 0.2


def _four_corner_raster(px: np.ndarray, py: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Reference conservative raster: a cell is out if all four of its corners are outside
    one edge (each corner tested, numpy, the packer's edge function term for term)."""
    shape = np.zeros((rows, cols), bool)
    twice_area = (px[1] - px[0]) * (py[2] - py[0]) - (px[2] - px[0]) * (py[1] - py[0])
    sign = 1.0 if twice_area >= 0 else -1.0
    r, q = np.mgrid[
        int(np.floor(py.min())) : int(np.floor(py.max())) + 1,
        int(np.floor(px.min())) : int(np.floor(px.max())) + 1,
    ]
    inside = np.ones(r.shape, bool)
    if twice_area != 0.0:
        for e in range(3):
            ax, ay, bx, by = px[e], py[e], px[(e + 1) % 3], py[(e + 1) % 3]
            out = np.ones(r.shape, bool)
            for cx, cy in ((q, r), (q + 1, r), (q, r + 1), (q + 1, r + 1)):
                out &= sign * ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)) < 0
            inside &= ~out
    shape[r[inside], q[inside]] = True
    return shape


def test_triangle_raster_matches_the_four_corner_test():
    rng = np.random.default_rng(5)
    for trial in range(3000):
        scale = (0.3, 3.0, 12.0)[trial % 3]
        points = rng.random((3, 2)) * scale + 1.0
        if trial % 5 == 0:  # corners on cell lines and edges along the axes
            points = np.round(points * 2) / 2
        if trial % 7 == 0:  # collinear
            points[2] = points[0] + 0.5 * (points[1] - points[0])
        px, py = points[:, 0].copy(), points[:, 1].copy()
        shape = np.zeros((20, 20), bool)
        uv_pack._raster_triangle(shape, px, py)
        np.testing.assert_array_equal(shape, _four_corner_raster(px, py, 20, 20), err_msg=trial)


def _reference_place(shapes: list[np.ndarray], placing: np.ndarray, fill: float):
    """Reference placement, by brute force: each chart (in ``placing`` order) goes to the free
    position and quarter turn with the smallest (atlas side, width + height, turn, y, x)."""
    total = sum(int(s.sum()) for s in shapes)
    longest = max(max(s.shape) for s in shapes)
    size = int(np.sqrt(total / fill) + longest) + 4
    taken = np.zeros((size, size), np.int64)
    turn, offset = np.zeros(len(shapes), np.int64), np.zeros((len(shapes), 2), np.int64)
    width = height = 0
    for c in placing:
        options = []
        for k in range(4):
            shape = np.rot90(shapes[c], -k)  # what uv_pack._turn does to a point
            rows, cols = shape.shape
            if rows > size or cols > size:
                continue
            cumulative = np.concatenate([np.zeros((size, 1), np.int64), taken.cumsum(1)], 1)
            hits = np.zeros((size - rows + 1, size - cols + 1), np.int64)
            for r in range(rows):
                for s, e in _row_runs(shape[r]):
                    band = cumulative[r : r + size - rows + 1]
                    hits += band[:, e + 1 : e + 2 + size - cols] - band[:, s : s + 1 + size - cols]
            y, x = np.nonzero(hits == 0)
            new_w, new_h = np.maximum(width, x + cols), np.maximum(height, y + rows)
            keys = np.stack([np.maximum(new_w, new_h), new_w + new_h, np.full_like(x, k), y, x])
            options += [tuple(int(v) for v in row) for row in keys.T]
        if not options:
            return turn, offset, -1
        _, _, k, y, x = min(options)
        shape = np.rot90(shapes[c], -k)
        taken[y : y + shape.shape[0], x : x + shape.shape[1]] |= shape
        turn[c], offset[c] = k, (x, y)
        width, height = max(width, x + shape.shape[1]), max(height, y + shape.shape[0])
    return turn, offset, max(width, height)


def _row_runs(row: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], row.astype(np.int64), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


@pytest.mark.parametrize("size, fill", [(256, 0.3), (256, 2.0), (512, 0.6), (128, 0.3)])
def test_placement_is_the_brute_force_best(charts, monkeypatch, size, fill):
    corners, chart, n_charts = charts
    calls = []
    place_all = uv_pack._place_all
    monkeypatch.setattr(uv_pack, "_place_all", lambda *a: calls.append(a) or place_all(*a))
    uv_pack.pack_shapes(corners, chart, n_charts, size, 4)
    sorted_corners, starts, placing, cell, grow, _ = calls[-1]
    turn, offset, _, _, side = place_all(sorted_corners, starts, placing, cell, grow, fill)
    shapes = [
        uv_pack._footprint(sorted_corners, starts[c], starts[c + 1], cell, grow)[0]
        for c in range(n_charts)
    ]
    want_turn, want_offset, want_side = _reference_place(shapes, placing, fill)
    assert side == want_side
    if side > 0:
        np.testing.assert_array_equal(turn, want_turn)
        np.testing.assert_array_equal(offset, want_offset)


def test_cell_size_stops_only_where_the_bisection_has_settled():
    rng = np.random.default_rng(9)
    rim = 2 * uv_pack.GROW_CELLS + 1
    for _ in range(200):
        area = rng.random(rng.integers(1, 60)) * 10.0 ** rng.uniform(-6, 2)
        half_perimeter = np.sqrt(area) * rng.uniform(2, 5, len(area))
        cells = 10.0 ** rng.uniform(2, 6)
        low, high = 1e-12, 1e12
        for _ in range(100):  # the full 100 rounds
            mid = np.sqrt(low * high)
            count = np.sum(area / mid**2 + half_perimeter / mid * rim + rim**2)
            low, high = (mid, high) if count > cells else (low, mid)
        assert uv_pack._cell_size(area, half_perimeter, cells) == high
