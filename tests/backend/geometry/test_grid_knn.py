"""grid_knn: the same k nearest neighbours as a kd-tree, on surface-like and awkward inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from backend.geometry import grid_knn


def _tree_answer(points: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return cKDTree(points).query(queries, k=k)[1].reshape(len(queries), k)


@pytest.mark.parametrize("k", [1, 16])
def test_same_neighbours_as_a_kd_tree_on_a_sphere_surface(sphere_mesh, k):
    vertices, faces = sphere_mesh
    points = vertices[faces].mean(axis=1).astype(np.float64)  # centroids: a 2D sheet in 3D
    rng = np.random.default_rng(4)
    # Queries on, inside, outside and far outside the surface (outside the grid: clamped).
    queries = points[rng.integers(0, len(points), 300)] * rng.uniform(0.2, 4.0, (300, 1))
    found = grid_knn.k_nearest(points, queries, k)
    expected = _tree_answer(points, queries, k)
    distance = np.linalg.norm(points[found] - queries[:, None], axis=2)
    expected_distance = np.linalg.norm(points[expected] - queries[:, None], axis=2)
    # Nearest first and none missed; which of equally far points comes first may differ (a
    # sphere's centroids have many ties), so distances are compared, not indices.
    np.testing.assert_array_equal(distance, expected_distance)
    assert (found[:, 0] == expected[:, 0]).mean() > 0.9


def test_clustered_points_and_k_equal_to_n():
    rng = np.random.default_rng(5)
    # A dense clump and a few far points: most grid cells empty, the search must still go on.
    points = np.concatenate([rng.normal(0, 1e-3, (500, 3)), rng.uniform(-5, 5, (20, 3))])
    queries = rng.uniform(-6, 6, (50, 3))
    found = grid_knn.k_nearest(points, queries, len(points))
    assert (np.sort(found, axis=1) == np.arange(len(points))).all()  # every point, once
    np.testing.assert_array_equal(found[:, :5], _tree_answer(points, queries, 5))


def test_a_flat_point_set():
    rng = np.random.default_rng(6)
    points = np.column_stack([rng.random((2000, 2)), np.zeros(2000)])  # zero extent in z
    queries = rng.random((100, 3)) - 0.25
    np.testing.assert_array_equal(
        grid_knn.k_nearest(points, queries, 8), _tree_answer(points, queries, 8)
    )


def test_queries_far_from_a_big_cloud_are_answered():
    # A query far off lands on a border cell with an empty neighbourhood: the search must
    # widen ring after ring (visiting shells, not whole cubes) and still find the nearest.
    rng = np.random.default_rng(7)
    points = rng.normal(size=(200_000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)  # a sphere: the corners are empty
    queries = np.array([[1.0, 1.0, 1.0], [50.0, -40.0, 3.0], [0.0, 0.0, 0.0]])
    found = grid_knn.k_nearest(points, queries, 4)
    expected = _tree_answer(points, queries, 4)
    np.testing.assert_array_equal(
        np.linalg.norm(points[found] - queries[:, None], axis=2),
        np.linalg.norm(points[expected] - queries[:, None], axis=2),
    )
