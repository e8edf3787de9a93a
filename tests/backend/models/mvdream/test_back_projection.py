"""Back-projecting coloured views onto a sphere: each side takes its own view's colour."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from backend.models.mvdream.back_projection import back_projected_field, camera_axes

AZIMUTHS = (0.0, 90.0, 180.0, 270.0)
COLOURS = np.array([[220, 20, 20], [20, 200, 20], [20, 20, 220], [220, 220, 20]], np.uint8)


def _views(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.35) ** 2
    views = np.full((4, size, size, 3), 255, np.uint8)
    for view, colour in zip(views, COLOURS, strict=True):
        view[disc] = colour
    views[0][disc & (xx >= size / 2)] = (255, 0, 255)  # front view: right half magenta
    return views, np.stack([disc] * 4)


def test_camera_axes_frame() -> None:
    direction, right, up = camera_axes(0.0, 0.0)
    np.testing.assert_allclose(direction, [0, 0, 1], atol=1e-12)  # front camera on +Z
    np.testing.assert_allclose(right, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(up, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(camera_axes(0.0, 90.0)[0], [1, 0, 0], atol=1e-12)


@pytest.mark.parametrize(
    "point,expected",
    [
        ((-0.4, 0.0, 0.9), COLOURS[0]),  # front, image left half
        ((0.4, 0.0, 0.9), (255, 0, 255)),  # front, image right half (+X)
        ((1.0, 0.0, 0.0), COLOURS[1]),  # +X: the azimuth-90 view
        ((0.0, 0.0, -1.0), COLOURS[2]),
        ((-1.0, 0.0, 0.0), COLOURS[3]),
    ],
)
def test_each_side_gets_its_view(point, expected) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    views, masks = _views()
    field = back_projected_field(sphere.vertices, sphere.faces, views, masks, 0.0, AZIMUTHS)
    direction = np.asarray(point, float) / np.linalg.norm(point)
    colour = field(direction[None])[0]
    np.testing.assert_allclose(colour, np.asarray(expected) / 255.0, atol=0.08)


def test_top_is_still_coloured() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    views, masks = _views()
    field = back_projected_field(sphere.vertices, sphere.faces, views, masks, 0.0, AZIMUTHS)
    top = field(np.array([[0.0, 1.0, 0.0]]))[0]
    assert top.shape == (3,) and np.all((top >= 0) & (top <= 1))
