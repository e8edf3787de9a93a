"""UV unwrap: no flipped charts, inside the unit square, good utilization."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, decimate, uv


@pytest.fixture(scope="module")
def reduced_blob(blob_mesh):
    cleaned = clean.clean_mesh(*blob_mesh)
    result = decimate.decimate(cleaned.vertices, cleaned.faces, 4000)
    return result.vertices, result.faces


def test_charts_are_never_mirrored_and_fill_the_atlas(reduced_blob):
    result = uv.unwrap(*reduced_blob, texture_size=1024)
    assert result.flipped_faces == 0
    assert uv.count_flipped(result.uvs, result.faces) == 0
    assert result.uvs.min() >= 0.0 and result.uvs.max() <= 1.0
    assert result.utilization > 0.5
    np.testing.assert_allclose(result.vertices, reduced_blob[0][result.source_vertex])
    assert len(result.faces) == len(reduced_blob[1])


def test_uv_signed_area_sees_a_mirror():
    uvs = np.array([[0, 1], [1, 1], [0, 0]], dtype=np.float32)  # glTF v down: CCW with v up
    faces = np.array([[0, 1, 2]])
    assert uv.count_flipped(uvs, faces) == 0
    assert uv.count_flipped(uvs, faces[:, ::-1]) == 1


def _numpy_face_normals(vertices, faces):
    corners = vertices[faces].astype(np.float64)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(cross, axis=1)
    return cross / np.maximum(length, 1e-30)[:, None], 0.5 * length


def _numpy_signed_areas(uvs, faces):
    corners = uvs[faces].astype(np.float64)
    corners[..., 1] = -corners[..., 1]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def _numpy_projection(vertices, faces, chart, axes):
    axis = axes[chart]
    helper = np.where(np.abs(axis[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    tangent = np.cross(helper, axis)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    bitangent = np.cross(axis, tangent)
    corners = vertices[faces].astype(np.float64)
    flat = np.stack(
        [np.einsum("ijk,ik->ij", corners, tangent), np.einsum("ijk,ik->ij", corners, bitangent)],
        axis=2,
    )
    count = np.bincount(chart, minlength=len(axes)) * 3.0
    owner = np.repeat(chart, 3)
    xy = flat.reshape(-1, 2)
    mean = np.stack([np.bincount(owner, xy[:, k], len(axes)) for k in (0, 1)], axis=1)
    mean /= np.maximum(count, 1)[:, None]
    centred = xy - mean[owner]
    sxx = np.bincount(owner, centred[:, 0] ** 2, len(axes))
    syy = np.bincount(owner, centred[:, 1] ** 2, len(axes))
    sxy = np.bincount(owner, centred[:, 0] * centred[:, 1], len(axes))
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    cos, sin = np.cos(angle)[owner], np.sin(angle)[owner]
    rotated = np.stack(
        [cos * centred[:, 0] + sin * centred[:, 1], -sin * centred[:, 0] + cos * centred[:, 1]],
        axis=1,
    )
    return rotated.reshape(-1, 3, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_give_the_numpy_forms_bits(reduced_blob, dtype):
    vertices, faces = reduced_blob[0].astype(dtype), reduced_blob[1]
    normals, areas = uv.unit_face_normals(vertices, faces)
    want_normals, want_areas = _numpy_face_normals(vertices, faces)
    np.testing.assert_array_equal(normals, want_normals)
    np.testing.assert_array_equal(areas, want_areas)
    chart, axes = uv.segment_charts(normals, faces, len(vertices))
    # Box axes: one term of each projection is non-zero, so its sum has one order.
    np.testing.assert_array_equal(
        uv.project_charts(vertices, faces, chart, axes),
        _numpy_projection(vertices, faces, chart, axes),
    )
    uvs = np.random.default_rng(2).random((len(vertices), 2)).astype(dtype)
    np.testing.assert_array_equal(uv.uv_signed_areas(uvs, faces), _numpy_signed_areas(uvs, faces))


def test_seams_split_as_numpy_unique_does():
    rng = np.random.default_rng(4)
    n_vertices, n_charts = 500, 9
    faces = rng.integers(0, n_vertices - 50, (3000, 3))  # the last 50 vertices unused
    chart = rng.integers(0, n_charts, 3000)
    key = faces.reshape(-1) * np.int64(n_charts) + np.repeat(chart, 3)
    keys, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    source, got_first, new_faces = uv.split_seams(faces, chart, n_vertices, n_charts)
    np.testing.assert_array_equal(source, keys // n_charts)
    np.testing.assert_array_equal(got_first, first)
    np.testing.assert_array_equal(new_faces, inverse.reshape(-1, 3))
    assert new_faces.dtype == np.int64 and source.dtype == np.int64
