"""Grid, marching cubes and the TripoSR -> backend frame turn, on analytic fields."""

from __future__ import annotations

import numpy as np
import pytest

from backend.models.triposr.isosurface import (
    from_backend_frame,
    grid_points,
    marching_cubes,
    to_backend_frame,
)
from shared_protocol.errors import ErrorCode, ProtocolError


def test_grid_is_x_major_over_the_radius() -> None:
    points = grid_points(5, 0.87).numpy()
    assert points.shape == (125, 3)
    np.testing.assert_allclose(points[0], [-0.87, -0.87, -0.87], atol=1e-6)
    np.testing.assert_allclose(points[1], [-0.87, -0.87, -0.435], atol=1e-6)  # z fastest
    np.testing.assert_allclose(points[25], [-0.435, -0.87, -0.87], atol=1e-6)  # x slowest
    np.testing.assert_allclose(points[-1], [0.87, 0.87, 0.87], atol=1e-6)


def blob_density(resolution: int, radius: float, centre: np.ndarray) -> np.ndarray:
    """exp-shaped density, 25 on a sphere of radius 0.4 around ``centre``."""
    points = grid_points(resolution, radius).numpy()
    distance = np.linalg.norm(points - centre, axis=1)
    return (25.0 * np.exp(8.0 * (0.4 - distance))).reshape((resolution,) * 3)


def test_sphere_comes_out_outward_wound_and_in_place() -> None:
    centre = np.array([0.1, -0.2, 0.05])
    vertices, faces = marching_cubes(blob_density(48, 0.87, centre), 25.0, 0.87)
    np.testing.assert_allclose(np.linalg.norm(vertices - centre, axis=1), 0.4, atol=0.01)
    triangles = vertices.astype(np.float64)[faces]
    signed = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2]))
    assert signed.sum() / 6 == pytest.approx(4 / 3 * np.pi * 0.4**3, rel=0.03)


def test_no_crossing_is_a_clear_model_error() -> None:
    with pytest.raises(ProtocolError) as error:
        marching_cubes(np.full((8, 8, 8), 3.0, np.float32), 25.0, 0.87)
    assert error.value.code is ErrorCode.MODEL_FAILED
    with pytest.raises(ValueError):
        marching_cubes(np.zeros((8, 8, 9), np.float32), 25.0, 0.87)


def test_frame_turn_puts_up_on_y_and_the_camera_side_on_z() -> None:
    # TripoSR: +Z up, input camera on +X, image right is +Y.
    up, toward_camera, image_right = np.eye(3, dtype=np.float32)[[2, 0, 1]]
    turned = to_backend_frame(np.stack([up, toward_camera, image_right]))
    np.testing.assert_array_equal(turned, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert np.linalg.det(np.stack(turned)) == pytest.approx(1.0)  # a rotation: winding kept
    points = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_allclose(from_backend_frame(to_backend_frame(points)), points, atol=1e-6)
