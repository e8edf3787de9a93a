"""The paint cameras and condition maps against the scene they draw."""

from __future__ import annotations

import numpy as np
import trimesh

from backend.geometry import views
from backend.models.hunyuan3d.paint.render import (
    CAMERA_AZIMUTHS,
    CAMERA_ELEVATIONS,
    orbit_rotation,
    paint_cameras,
    render_conditions,
)


def test_cameras_look_at_the_named_sides() -> None:
    front, left, back, _, top, bottom = (
        orbit_rotation(a, e) for a, e in zip(CAMERA_AZIMUTHS, CAMERA_ELEVATIONS, strict=True)
    )
    np.testing.assert_allclose(front[2], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(left[2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(back[2], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(top[2], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(bottom[2], [0, -1, 0], atol=1e-12)
    for rotation in (front, left, back, top, bottom):
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_cameras_frame_the_normalised_mesh_as_upstream() -> None:
    """Upstream: centre the bounding box, bounding sphere diameter 1.15, views 1.2 wide."""
    vertices = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 3.0], [2.0, 4.0, 3.0], [2.0, 3.0, 4.0]])
    cameras = paint_cameras(vertices, 100)
    screen = views.project(cameras[0], vertices)  # the front view
    centre = np.array([2.0, 3.0, 3.5])
    radius = np.linalg.norm(vertices - centre, axis=1).max()
    expected_cols = 50 + (vertices[:, 0] - 2.0) * 1.15 / (2 * radius) / 1.2 * 100
    expected_rows = 50 - (vertices[:, 1] - 3.0) * 1.15 / (2 * radius) / 1.2 * 100
    np.testing.assert_allclose(screen[:, 0], expected_cols)
    np.testing.assert_allclose(screen[:, 1], expected_rows)
    np.testing.assert_allclose(screen[:, 2], -(vertices[:, 2] - 3.5))  # nearer: smaller


def test_condition_maps_show_the_surface_each_view_faces() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=2.0)
    vertices = sphere.vertices + np.array([5.0, 0.0, 0.0])  # off-centre, large: cameras adapt
    cameras = paint_cameras(vertices, 32)
    normals, positions, masks = render_conditions(vertices, sphere.faces, cameras, 32)
    assert normals.shape == positions.shape == (6, 32, 32, 3) and masks.shape == (6, 32, 32)
    assert (normals[~masks] == 1).all() and (positions[~masks] == 1).all()
    # The centre pixel of each view shows the sphere point facing that camera.
    for index, camera in enumerate(cameras):
        towards = -camera[2, :3]
        np.testing.assert_allclose(normals[index, 16, 16] * 2 - 1, towards, atol=0.05)
        # normalised position + 0.5, clipped to [0, 1] as upstream (the sphere reaches 0.575)
        expected = np.clip(towards * 0.575 + 0.5, 0, 1)
        np.testing.assert_allclose(positions[index, 16, 16], expected, atol=0.03)
