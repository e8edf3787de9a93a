"""Clean: welding, degenerate/duplicate faces, floaters, orientation, hole filling."""

from __future__ import annotations

import numpy as np

from backend.geometry import clean, quality


def test_clean_keeps_a_sound_mesh_intact(sphere_mesh):
    vertices, faces = sphere_mesh
    result = clean.clean_mesh(vertices, faces)
    assert result.report["flipped_faces"] == 0
    assert abs(len(result.faces) - len(faces)) <= 10  # marching cubes' few zero-area faces
    assert quality.topology(result.vertices, result.faces)["watertight"]


def test_welds_split_vertices_and_drops_degenerate_and_duplicate_faces(sphere_mesh):
    vertices, faces = sphere_mesh
    # Every face gets its own three vertices (a "triangle soup"), plus junk faces.
    soup = vertices[faces].reshape(-1, 3)
    soup_faces = np.arange(len(soup)).reshape(-1, 3)
    junk = np.array([[0, 0, 1], soup_faces[5][[1, 2, 0]]])
    result = clean.clean_mesh(soup, np.vstack([soup_faces, junk]), {"c": np.ones((len(soup), 3))})
    assert result.report["welded_vertices"] >= len(soup) - len(vertices)
    assert result.report["duplicate_faces"] >= 1
    assert result.report["degenerate_faces"] >= 1
    assert result.attributes["c"].shape == (len(result.vertices), 3)
    assert quality.topology(result.vertices, result.faces)["watertight"]


def test_removes_floaters_but_keeps_the_body(sphere_mesh):
    vertices, faces = sphere_mesh
    speck = vertices[faces[:3]].reshape(-1, 3) * 0.01 + 2.0
    speck_faces = np.arange(9).reshape(3, 3) + len(vertices)
    result = clean.clean_mesh(np.vstack([vertices, speck]), np.vstack([faces, speck_faces]))
    assert result.report["floater_faces"] == 3
    assert quality.topology(result.vertices, result.faces)["pieces"] == 1
    assert np.all(result.vertices < 1.5)


def test_orients_faces_outward_and_consistently(sphere_mesh):
    vertices, faces = sphere_mesh
    rng = np.random.default_rng(0)
    scrambled = faces[:, ::-1].copy()  # inside out ...
    pick = rng.random(len(faces)) < 0.3  # ... and 30 % of faces turned back
    scrambled[pick] = faces[pick]
    result = clean.clean_mesh(vertices, scrambled, floater_fraction=0)
    corners = result.vertices[result.faces].astype(np.float64)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = np.einsum("ij,ij->i", normals, corners.mean(axis=1))
    assert np.all(outward > 0)


def test_corner_attributes_follow_their_faces(sphere_mesh):
    vertices, faces = sphere_mesh
    corner = vertices[faces][:, :, :2]  # a per-corner value we can check against positions
    result = clean.clean_mesh(vertices, faces[:, ::-1], corner_attributes={"xy": corner[:, ::-1]})
    np.testing.assert_allclose(
        result.corner_attributes["xy"], result.vertices[result.faces][:, :, :2], atol=1e-6
    )


def test_fill_holes_closes_a_cut_sphere(sphere_mesh):
    vertices, faces = sphere_mesh
    centres = vertices[faces].mean(axis=1)
    cut = faces[centres[:, 1] < 0.45]  # a cap removed: one round hole
    assert not quality.topology(vertices, cut)["watertight"]
    result = clean.clean_mesh(
        vertices, cut, {"c": np.ones((len(vertices), 3))}, fill_holes_enabled=True
    )
    assert result.report["holes_filled"] == 1
    assert quality.topology(result.vertices, result.faces)["watertight"]
    assert len(result.attributes["c"]) == len(result.vertices)


def test_split_corners_splits_only_where_corners_disagree():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    uv = np.array([[[0, 0], [1, 0], [0, 1]], [[0.5, 1], [1, 0], [1, 1]]], dtype=np.float32)
    new_faces, values, source = clean.split_corners(vertices, faces, uv)
    assert len(values) == 5  # vertex 2 has two UVs, vertex 1 one
    np.testing.assert_array_equal(source[new_faces], faces)
    np.testing.assert_allclose(values[new_faces], uv)


def _duplicate_mask_by_unique(faces: np.ndarray) -> np.ndarray:
    """Reference: the earlier np.unique form of duplicate_face_mask (parity sum mod 3)."""
    ordered = np.sort(faces, axis=1)
    _, first, inverse, counts = np.unique(
        ordered, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    mask = np.ones(len(faces), dtype=bool)
    mask[first] = False
    rotations = faces[:, 0] == ordered[:, 0]
    second = faces[:, 1] == ordered[:, 0]
    parity = np.where(
        rotations, faces[:, 1] < faces[:, 2],
        np.where(second, faces[:, 2] < faces[:, 0], faces[:, 0] < faces[:, 1]),
    )  # fmt: skip
    both = np.zeros(len(counts), dtype=np.int64)
    np.add.at(both, inverse, np.where(parity, 1, 2))
    return mask | ((both[inverse] % 3 == 0) & (counts[inverse] > 1))


def _messy(sphere_mesh) -> tuple[np.ndarray, np.ndarray]:
    """The sphere with turned faces, copies in both windings (even three), rotated copies,
    repeated-vertex faces, split vertices, a floater and an inside-out second sphere."""
    rng = np.random.default_rng(5)
    vertices, faces = sphere_mesh
    faces = faces.copy()
    turned = rng.choice(len(faces), 200, replace=False)
    faces[turned] = faces[turned][:, ::-1]
    n = len(vertices)
    vertices = np.concatenate([vertices, vertices + 3, vertices[:50] * 0.01 - 3])
    small = faces[faces.max(axis=1) < 50]
    faces = np.concatenate([
        faces, faces[:40], faces[40:60][:, ::-1], faces[60:70], faces[60:70], faces[70:80],
        faces[80:90][:, [1, 2, 0]], faces[90:95][:, [2, 1, 0]], [[5, 5, 6], [7, 8, 7]],
        faces[::-1, ::-1] + n, small + 2 * n,
    ])  # fmt: skip
    # Split vertices: the first sphere's faces use copies of its lowest vertices (welded back).
    split = faces[: len(faces) // 3]
    split[split < 100] += len(vertices)
    return np.concatenate([vertices, vertices[:100]]), faces


def test_duplicate_face_mask_matches_the_unique_form(sphere_mesh, monkeypatch):
    from backend.geometry import adjacency

    monkeypatch.setattr(adjacency, "_CHUNK", 997)
    vertices, faces = _messy(sphere_mesh)
    copies = len(vertices) - 100
    faces = np.where(faces >= copies, faces - copies, faces)  # welded back by hand
    expected = _duplicate_mask_by_unique(faces)
    assert expected.sum() > 100
    assert np.array_equal(clean.duplicate_face_mask(faces), expected)
    assert np.array_equal(clean.duplicate_face_mask(faces, faces.max() + 1), expected)


def test_clean_is_the_same_for_any_thread_count(sphere_mesh, monkeypatch):
    """Byte-identical output on one thread and on two, with the work split into many chunks."""
    import numba

    from backend.geometry import adjacency

    monkeypatch.setattr(adjacency, "_CHUNK", 997)
    monkeypatch.setattr(adjacency, "_BUCKET_BITS", 4)
    monkeypatch.setattr(clean, "_WELD_BUCKET_BITS", 3)
    vertices, faces = _messy(sphere_mesh)
    before = numba.get_num_threads()
    results, measures = [], []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results.append(clean.clean_mesh(vertices, faces))
            measures.append(
                clean.face_areas(vertices, faces).tobytes()
                + clean.signed_volumes(vertices, faces).tobytes()
            )
    finally:
        numba.set_num_threads(before)
    assert measures[0] == measures[1]
    one, two = results
    assert one.report == two.report
    assert min(one.report.values()) > 0, one.report  # every kind of fix was exercised
    assert one.vertices.tobytes() == two.vertices.tobytes()
    assert one.faces.tobytes() == two.faces.tobytes()
    for x, y in zip(one.face_pairs, two.face_pairs, strict=True):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def _weld_by_unique(vertices, faces, distance):
    """The np.unique form weld_vertices had (the reference for its parallel sort)."""
    low = vertices.min(axis=0)
    cells = np.floor((vertices - low) / max(distance, 1e-30)).astype(np.int64)
    keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
    _, kept, new_index = np.unique(keys, return_index=True, return_inverse=True)
    return kept, new_index.reshape(-1)[faces]


def test_weld_vertices_matches_the_unique_form(sphere_mesh, monkeypatch):
    """Same kept indices and faces as np.unique on 1 and 2 threads: clustered and repeated
    keys, float32 and float64, int32 (m, 2) faces, many buckets and radix steps."""
    import numba

    from backend.geometry import adjacency

    monkeypatch.setattr(adjacency, "_CHUNK", 997)
    monkeypatch.setattr(clean, "_WELD_BUCKET_BITS", 3)
    rng = np.random.default_rng(5)
    vertices, faces = _messy(sphere_mesh)
    grid = rng.integers(0, 40, (20000, 3)).astype(np.float32) * 0.01  # many repeats
    cases = [
        (vertices, faces, 1e-6 * clean.bbox_diagonal(vertices)),
        (vertices.astype(np.float64), faces, 1e-3),
        (grid, rng.integers(0, len(grid), (5000, 3)), 0.02),
        (grid.astype(np.float64), rng.integers(0, len(grid), (7000, 2)).astype(np.int32), 0.031),
        (grid[:1], np.zeros((1, 3), np.int64), 0.02),
    ]
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for points, corners, distance in cases:
                expected = _weld_by_unique(points, corners, distance)
                kept, welded = clean.weld_vertices(points, corners, distance)
                assert kept.dtype == np.int64 and welded.dtype == expected[1].dtype
                assert np.array_equal(kept, expected[0]), (len(points), threads)
                assert np.array_equal(welded, expected[1]), (len(points), threads)
    finally:
        numba.set_num_threads(before)


def test_take_rows_and_compact_match_numpy_indexing():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(500, 3)).astype(np.float32)
    index = rng.integers(0, 500, 800)
    for array in (values, values.astype(np.float64), values[:, 0], values[:, :2], values > 0):
        taken = clean._take_rows(array, index)
        assert taken.dtype == array.dtype and taken.tobytes() == array[index].tobytes()
        assert taken.shape == array[index].shape
    faces = rng.integers(0, 400, (300, 3))  # vertices 400..499 and some below unused
    kept, compacted, attributes = clean.compact_vertices(values, faces, {"c": values[:, :2]})
    used = np.zeros(500, bool)
    used[faces] = True
    assert np.array_equal(kept, values[used]) and np.array_equal(attributes["c"], values[used, :2])
    assert np.array_equal(compacted, (np.cumsum(used) - 1)[faces])


def test_repeated_vertex_mask_matches_the_numpy_form():
    faces = np.random.default_rng(3).integers(0, 6, (2000, 3))
    expected = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    )
    assert 0 < expected.sum() < len(faces)
    assert np.array_equal(clean.repeated_vertex_mask(faces), expected)
    assert np.array_equal(clean.repeated_vertex_mask(faces.astype(np.int32)[:, ::-1]), expected)
