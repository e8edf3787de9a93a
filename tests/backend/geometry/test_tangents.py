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
