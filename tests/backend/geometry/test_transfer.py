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
