"""MVDream's views with fitted cameras, baked by the geometry's painted-views source: each side of
a sphere takes its own view's colour, and a surface hidden from a view takes none of it."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from backend.geometry import views as view_source
from backend.models.mvdream.back_projection import camera_axes, painted_views

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


def test_fitted_cameras_frame_the_mesh_on_the_cut_out() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    views, masks = _views()
    painted = painted_views(sphere.vertices, views, masks, 0.0, AZIMUTHS)
    assert painted.images.shape == (4, 64, 64, 4)
    np.testing.assert_array_equal(painted.images[..., 3] == 255, masks)
    for camera, mask in zip(painted.cameras, masks, strict=True):
        screen = view_source.project(camera, sphere.vertices)
        rows, cols = np.nonzero(mask)
        # the mesh's extent lands on the cut-out's box (pixel centres at +0.5)
        assert screen[:, 0].min() == pytest.approx(cols.min() + 0.5, abs=1.0)
        assert screen[:, 0].max() == pytest.approx(cols.max() + 0.5, abs=1.0)
        assert screen[:, 1].min() == pytest.approx(rows.min() + 0.5, abs=1.0)


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
    painted = painted_views(sphere.vertices, views, masks, 0.0, AZIMUTHS)
    direction = np.asarray(point, float) / np.linalg.norm(point)
    colour, _ = view_source.colours(painted, sphere.vertices, sphere.faces, direction[None],
                                    direction[None])  # fmt: skip
    np.testing.assert_allclose(colour[0], np.asarray(expected) / 255.0, atol=0.08)


def test_a_concave_side_takes_no_colour_from_a_view_that_cannot_see_it() -> None:
    """The old colour field knew no occlusion: a ball behind another took the front view's
    colour through it."""
    front_ball = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    back_ball = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    back_ball.vertices += [0.0, 0.0, -1.2]  # straight behind, as seen from the front
    mesh = trimesh.util.concatenate([front_ball, back_ball])
    views, masks = _views()
    painted = painted_views(mesh.vertices, views, masks, 0.0, AZIMUTHS)
    hidden = np.array([[0.0, 0.0, -0.7]])  # the back ball's front pole, behind the front ball
    _, seen = view_source.sample(painted, mesh.vertices, mesh.faces, hidden,
                                 np.array([[0.0, 0.0, 1.0]]))  # fmt: skip
    assert seen[0] == 0  # only the front view faces it, and the front ball hides it
