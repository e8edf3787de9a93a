"""Tangent frames: MikkTSpace conventions (T = dP/du, v up, handedness w) and smooth normals."""

from __future__ import annotations

import numpy as np

from backend.geometry import tangents


def _square(mirror: bool = False):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    u = 1.0 - vertices[:, 0] if mirror else vertices[:, 0]
    uvs = np.column_stack([u, 1.0 - vertices[:, 1]]).astype(np.float32)  # glTF v runs down
    return vertices, faces, uvs


def test_tangent_follows_u_and_bitangent_follows_v_up():
    vertices, faces, uvs = _square()
    normals = tangents.vertex_normals(vertices, faces)
    np.testing.assert_allclose(normals, np.tile([0, 0, 1], (4, 1)), atol=1e-6)
    frame = tangents.vertex_tangents(vertices, faces, uvs, normals)
    np.testing.assert_allclose(frame[:, :3], np.tile([1, 0, 0], (4, 1)), atol=1e-6)
    assert np.all(frame[:, 3] == 1.0)  # B = cross(N, T) = +y = direction of v up


def test_mirrored_uvs_get_negative_handedness():
    vertices, faces, uvs = _square(mirror=True)
    frame = tangents.vertex_tangents(vertices, faces, uvs, tangents.vertex_normals(vertices, faces))
    np.testing.assert_allclose(frame[:, :3], np.tile([-1, 0, 0], (4, 1)), atol=1e-6)
    assert np.all(frame[:, 3] == -1.0)


def test_weld_shares_one_normal_across_a_seam(sphere_mesh):
    vertices, faces = sphere_mesh
    smooth = tangents.vertex_normals(vertices, faces)
    radial = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    assert np.min(np.sum(smooth * radial, axis=1)) > 0.99
    doubled = np.vstack([vertices, vertices])
    split_faces = np.vstack([faces[: len(faces) // 2], faces[len(faces) // 2 :] + len(vertices)])
    weld = np.concatenate([np.arange(len(vertices))] * 2)
    welded = tangents.vertex_normals(doubled, split_faces, weld)
    np.testing.assert_allclose(welded[: len(vertices)], smooth, atol=1e-5)


def _numpy_tangents(vertices, faces, uvs, normals):
    """The numpy form the kernels replaced, step for step: the reference they must match."""
    corners = vertices[faces].astype(np.float64)
    uv = uvs[faces].astype(np.float64)
    uv[..., 1] = -uv[..., 1]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    safe = np.where(np.abs(det) > 1e-30, det, 1e-30)
    dp_du = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) / safe[:, None]
    sign = np.where(det < 0, -1.0, 1.0)
    angles = np.empty(corners.shape[:2])
    for k in range(3):
        a = corners[:, (k + 1) % 3] - corners[:, k]
        b = corners[:, (k + 2) % 3] - corners[:, k]
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30
        )
        angles[:, k] = np.arccos(np.clip(cos, -1.0, 1.0))
    summed = np.zeros((len(vertices), 3))
    handed = np.zeros(len(vertices))
    for k in range(3):
        n = normals[faces[:, k]].astype(np.float64)
        t = dp_du - n * np.einsum("ij,ij->i", dp_du, n)[:, None]
        t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-30)
        for c in range(3):
            summed[:, c] += np.bincount(faces[:, k], t[:, c] * angles[:, k], len(vertices))
        handed += np.bincount(faces[:, k], sign * angles[:, k], minlength=len(vertices))
    n = normals.astype(np.float64)
    summed -= n * np.einsum("ij,ij->i", summed, n)[:, None]
    length = np.linalg.norm(summed, axis=1, keepdims=True)
    fallback = np.cross(n, np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))
    summed = np.where(length > 1e-12, summed / np.maximum(length, 1e-30), fallback)
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-30)
    return np.hstack([summed, np.where(handed < 0, -1.0, 1.0)[:, None]]).astype(np.float32)


def test_tangents_match_the_numpy_form(sphere_mesh):
    vertices, faces = sphere_mesh
    rng = np.random.default_rng(7)
    uvs = rng.random((len(vertices), 2)).astype(np.float32)  # mirrored faces, both signs of w
    uvs[faces[:50, 1]] = uvs[faces[:50, 0]]  # collapsed UV triangles
    normals = tangents.vertex_normals(vertices, faces)
    normals[:40] = 0.0  # no normal: no tangent sum, the fallback frame
    frame = tangents.vertex_tangents(vertices, faces, uvs, normals)
    want = _numpy_tangents(vertices, faces, uvs, normals)
    np.testing.assert_array_equal(frame[:, 3], want[:, 3])
    # Sums in numpy's order, numpy's arccos: the same bits where numpy's einsum adds three
    # terms as (x + z) + y (it does on x86-64); at worst a rounding apart elsewhere.
    np.testing.assert_allclose(frame[:, :3], want[:, :3], rtol=0, atol=1e-6)
    assert np.count_nonzero(frame[:, :3] != want[:, :3]) <= 0.001 * frame[:, :3].size
    assert (w := frame[:, 3]).min() == -1.0 and w.max() == 1.0


def test_normals_match_the_numpy_form(sphere_mesh):
    vertices, faces = sphere_mesh
    weld = np.arange(len(vertices)) // 2  # pairs of vertices share one normal
    summed = np.zeros((weld.max() + 1, 3))
    tangents._accumulate_normals(vertices.astype(np.float64), faces.astype(np.int64), weld, summed)
    summed /= np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-30)
    np.testing.assert_array_equal(
        tangents.vertex_normals(vertices, faces, weld), summed[weld].astype(np.float32)
    )
