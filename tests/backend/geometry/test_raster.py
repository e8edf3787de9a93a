"""Rasteriser: coverage follows area, shared edges leave no cracks, depth picks the nearest."""

from __future__ import annotations

import numpy as np

from backend.geometry import raster


def test_two_triangles_cover_a_square_without_cracks():
    points = np.array([[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    face_id, bary = raster.rasterize(points, faces, 100, 100)
    assert np.count_nonzero(face_id >= 0) == 80 * 80
    covered = face_id >= 0
    np.testing.assert_allclose(bary[covered].sum(axis=1), 1.0, atol=1e-5)


def test_depth_keeps_the_nearest_triangle():
    square = np.array([[0, 0], [1, 0], [0, 1]], dtype=float)
    points = np.vstack([square, square])  # two copies of one triangle, the second nearer
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    depths = np.array([5.0, 5.0, 5.0, 1.0, 1.0, 1.0])
    face_id, _ = raster.rasterize(points, faces, 8, 8, depths=depths)
    assert np.all(face_id[face_id >= 0] == 1)
