"""Transfer kernels: closest faces and the per-face affine 3D -> UV maps."""

from __future__ import annotations

import numpy as np

from backend.geometry import transfer


def test_closest_face_and_distance_on_a_plane():
    lo_vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    lo_faces = np.array([[0, 1, 2], [0, 2, 3]])
    points = np.array([[0.8, 0.2, 0.3], [0.2, 0.8, -0.1], [2.0, 0.5, 0.0]])
    face, dist = transfer.closest_faces(points, np.array([1, 3, 2]), lo_vertices, lo_faces)
    assert face.tolist()[:2] == [0, 1]
    np.testing.assert_allclose(dist, [0.3, 0.1, 1.0], atol=1e-6)


def test_face_uv_map_sends_corners_to_their_uvs_and_ignores_height():
    vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0]], dtype=np.float32)
    uvs = np.array([[0.1, 0.1], [0.5, 0.1], [0.1, 0.5]], dtype=np.float32)
    matrix, origin = transfer.face_uv_maps(vertices, np.array([[0, 1, 2]]), uvs)
    for corner, expected in zip(vertices, uvs, strict=True):
        np.testing.assert_allclose(origin[0] + matrix[0] @ (corner - vertices[0]), expected)
    lifted = np.array([1.0, 1.0, 5.0])  # off the plane: maps as its projection (1, 1, 0)
    np.testing.assert_allclose(origin[0] + matrix[0] @ lifted, [0.3, 0.3])


def test_banded_splat_draws_the_same_atlas_on_any_thread_count(sphere_mesh, monkeypatch):
    """The splat draws bands of rows in parallel: overlapping triangles must still resolve in
    the sequential order (nearest wins, first on ties), whatever the thread count, and a
    triangle crossing band borders must be drawn whole (bands of 1 row vs 64 rows agree)."""
    import numba

    from backend.geometry import decimate, uv

    vertices, faces = sphere_mesh
    reduced = decimate.decimate(vertices, faces, 800)
    mapped = uv.unwrap(reduced.vertices, reduced.faces, 256)
    split = np.full(len(reduced.vertices), -1)
    split[mapped.source_vertex] = np.arange(len(mapped.source_vertex))
    near = split[reduced.owner]
    face, dist = transfer.closest_faces(vertices, near, mapped.vertices, mapped.faces,
                                        mapped.source_vertex)  # fmt: skip
    args = (vertices, faces, vertices.astype(np.float32), face, dist, mapped.vertices,
            mapped.faces, mapped.uvs, mapped.chart, 256)  # fmt: skip
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = transfer.splat(*args)
    finally:
        numba.set_num_threads(threads)
    many = transfer.splat(*args)
    monkeypatch.setattr(transfer, "SPLAT_BAND_ROWS", 1)
    thin = transfer.splat(*args)
    monkeypatch.setattr(transfer, "SPLAT_BAND_ROWS", 64)
    thick = transfer.splat(*args)
    assert (one[1] >= 0).mean() > 0.3  # the atlas is drawn, not empty
    for other in (many, thin, thick):
        np.testing.assert_array_equal(one[1], other[1])
        np.testing.assert_array_equal(one[0], other[0])


def test_splat_texels_interpolate_at_the_texel_centres(sphere_mesh):
    """With positions as the attribute, each drawn texel's value is the point of its triangle
    that its low-res face's UV map sends to the texel's centre (true barycentrics there)."""
    from backend.geometry import decimate, uv

    vertices, faces = sphere_mesh
    reduced = decimate.decimate(vertices, faces, 800)
    mapped = uv.unwrap(reduced.vertices, reduced.faces, 256)
    split = np.full(len(reduced.vertices), -1)
    split[mapped.source_vertex] = np.arange(len(mapped.source_vertex))
    face, dist = transfer.closest_faces(vertices, split[reduced.owner], mapped.vertices,
                                        mapped.faces, mapped.source_vertex)  # fmt: skip
    size = 256
    texels, flat, through = transfer.splat_texels(
        vertices, faces, vertices.astype(np.float32), face, dist, mapped.vertices,
        mapped.faces, mapped.uvs, mapped.chart, size,
    )  # fmt: skip
    assert len(flat) > 0.3 * size * size and np.all(np.diff(flat) > 0)
    matrix, origin = transfer.face_uv_maps(mapped.vertices, mapped.faces, mapped.uvs)
    corner = mapped.vertices[mapped.faces[through, 0]].astype(np.float64)
    at = origin[through] + np.einsum("kij,kj->ki", matrix[through], texels - corner)
    centre = np.column_stack([flat % size + 0.5, flat // size + 0.5]) / size
    np.testing.assert_allclose(at, centre, atol=1e-4)
    image, face_map = transfer.splat(
        vertices, faces, vertices.astype(np.float32), face, dist, mapped.vertices,
        mapped.faces, mapped.uvs, mapped.chart, size,
    )  # fmt: skip
    np.testing.assert_array_equal(np.flatnonzero(face_map.reshape(-1) >= 0), flat)
    np.testing.assert_array_equal(image.reshape(-1, 3)[flat], texels)


def _band_lists_in_one_pass(through, first_row, last_row, bands, band_rows):
    """The reference: every draw appended to its bands in triangle order."""
    lists: list[list[int]] = [[] for _ in range(bands)]
    for t in range(through.shape[0]):
        for k in range(3):
            if through[t, k] >= 0:
                for b in range(first_row[t, k] // band_rows, last_row[t, k] // band_rows + 1):
                    lists[b].append(3 * t + k)
    start = np.cumsum([0] + [len(items) for items in lists])
    return start, np.array([d for items in lists for d in items], np.int32)


def test_band_lists_in_chunks_keep_triangle_order_in_each_band() -> None:
    import numba

    rng = np.random.default_rng(5)
    m, height, band_rows = 3000, 256, 16
    first = rng.integers(0, height, (m, 3)).astype(np.int32)
    last = np.minimum(first + rng.integers(0, 40, (m, 3)), height - 1).astype(np.int32)
    through = np.where(rng.random((m, 3)) < 0.7, rng.integers(0, 50, (m, 3)), -1).astype(np.int32)
    bands = height // band_rows
    start, draws = _band_lists_in_one_pass(through, first, last, bands, band_rows)
    for threads in (1, 2):
        numba.set_num_threads(threads)
        for chunks in (1, 7, 64):
            got_start, got = transfer._band_lists(through, first, last, bands, band_rows, chunks)
            np.testing.assert_array_equal(got_start, start)
            np.testing.assert_array_equal(got, draws)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_spread_order_visits_every_band_once_and_spreads_neighbours() -> None:
    for count in (1, 2, 7, 64, 128, 129):
        order = transfer.spread_order(count)
        np.testing.assert_array_equal(np.sort(order), np.arange(count))
    order = transfer.spread_order(128)
    assert np.abs(np.diff(order)).min() > 16  # consecutive runs are far apart in the atlas
