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
