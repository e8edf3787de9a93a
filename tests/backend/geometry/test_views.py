"""Painted views as a colour source, on spheres seen from known orthographic cameras.

Every expected colour is computed from the scene, not from the code under test: constant-colour
views blend by the facing weights in closed form, an analytic render of a sphere gives each
pixel the colour of the sphere point it shows, and a small ball in front of a big one hides a
known disc of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from backend.geometry import bake, decimate, raster, tangents, tolerances, uv, views
from backend.geometry.raw_asset import PaintedViews, orthographic_camera
from tests.support.analytic_meshes import analytic_color

SIZE = 128  # view pixels per side
EXTENT = 1.6  # world units a view spans


def axes(azimuth: float, elevation: float) -> np.ndarray:
    """(3, 3) rows right, up, towards the camera of an orbit camera (+Y up, azimuth 0 on +Z)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    backward = np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    hint = np.array([0.0, 1.0, 0.0]) if abs(math.cos(e)) > 1e-6 else np.array([0.0, 0.0, -1.0])
    right = np.cross(hint, backward)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(backward, right), backward])


def camera(rotation: np.ndarray, size: int = SIZE) -> np.ndarray:
    return orthographic_camera(rotation, np.zeros(3), size / EXTENT, (size / 2, size / 2))


def sphere(radius: float = 0.5, subdivisions: int = 4) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)


def constant(colour: tuple[int, int, int], size: int = SIZE) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (size, size, 3))


def expected_blend(normals: np.ndarray, rotations: list[np.ndarray], colours: np.ndarray,
                   weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a convex surface gets: facing-weighted mean of the views' colours, and its weight."""
    cos = normals @ np.stack([r[2] for r in rotations]).T  # (k, v)
    facing = cos > math.cos(math.radians(tolerances.VIEW_MAX_ANGLE_DEG))
    weight = np.where(facing, np.clip(cos, 0, None) ** tolerances.VIEW_FACING_EXPONENT, 0.0)
    weight = weight * weights
    total = weight.sum(1)
    return (weight @ colours) / np.maximum(total, 1e-30)[:, None], total


def test_constant_views_blend_by_how_squarely_each_sees_the_surface() -> None:
    vertices, faces = sphere()
    normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    directions = [(0, 0), (90, 0), (180, 0), (270, 0), (0, 90), (0, -90)]
    rotations = [axes(a, e) for a, e in directions]
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255],
                        [255, 0, 255]], np.uint8)  # fmt: skip
    weights = np.array([1.0, 0.1, 0.5, 0.1, 0.05, 0.05])  # Hunyuan3D-Paint's view weights
    painted = PaintedViews(np.stack([constant(tuple(c)) for c in palette]),
                           np.stack([camera(r) for r in rotations]), weights)  # fmt: skip
    colours, total = views.sample(painted, vertices, faces, vertices, normals)
    expected, expected_total = expected_blend(normals, rotations, palette / 255.0, weights)
    assert (total > 0).all()  # six axis views see all of a sphere
    np.testing.assert_allclose(total, expected_total, rtol=1e-4)
    np.testing.assert_allclose(colours, expected, atol=1e-4)


def analytic_render(rotation: np.ndarray, radius: float, size: int = SIZE) -> np.ndarray:
    """(size, size, 4) uint8: each pixel the analytic colour of the sphere point it shows,
    transparent off the sphere."""
    pixel = (np.arange(size) + 0.5 - size / 2) * EXTENT / size
    a, b = np.meshgrid(pixel, -pixel)  # plane coordinates along right and up; row 0 on top
    inside = a**2 + b**2 < radius**2
    depth = np.sqrt(np.clip(radius**2 - a**2 - b**2, 0, None))
    points = (a[..., None] * rotation[0] + b[..., None] * rotation[1]
              + depth[..., None] * rotation[2])  # fmt: skip
    image = np.zeros((size, size, 4), np.uint8)
    image[..., :3] = np.rint(analytic_color(points.reshape(-1, 3)) * 255).reshape(size, size, 3)
    image[..., 3] = np.where(inside, 255, 0)
    return image


@pytest.fixture(scope="module")
def four_views() -> tuple[PaintedViews, np.ndarray, np.ndarray]:
    """A sphere of radius 0.5 and analytic renders of it from four sides (none from above)."""
    vertices, faces = sphere()
    rotations = [axes(a, 0) for a in (0, 90, 180, 270)]
    painted = PaintedViews(np.stack([analytic_render(r, 0.5) for r in rotations]),
                           np.stack([camera(r) for r in rotations]), np.ones(4))  # fmt: skip
    return painted, vertices, faces


def test_views_give_back_the_colour_of_the_surface_they_show(four_views) -> None:
    painted, vertices, faces = four_views
    normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    colours, total = views.sample(painted, vertices, faces, vertices, normals)
    seen = total > 0
    # Seen: everything but the caps around the poles, more than 75 degrees off every view.
    best = (normals @ painted.cameras[:, 2, :3].T).min(axis=1)  # depth axis: -towards
    limit = -math.cos(math.radians(tolerances.VIEW_MAX_ANGLE_DEG))
    polar = best > limit + 0.01
    assert seen[best < limit - 0.01].all() and not seen[polar].any()
    error = np.abs(colours[seen] - analytic_color(vertices[seen]))
    assert error.mean() < 0.01 and error.max() < 0.08
    filled, share = views.colours(painted, vertices, faces, vertices, normals)
    assert share == pytest.approx(seen.mean())
    np.testing.assert_array_equal(filled[seen], colours[seen])
    assert np.abs(filled[polar] - analytic_color(vertices[polar])).mean() < 0.05


def test_a_hidden_surface_takes_no_colour_from_the_view_that_cannot_see_it() -> None:
    big_v, big_f = sphere(0.6)
    small_v, small_f = sphere(0.2, 3)
    small_v = small_v + np.array([0.0, 0.0, 1.2])  # a small ball in front of the big one (+Z)
    vertices = np.concatenate([big_v, small_v])
    faces = np.concatenate([big_f, small_f + len(big_v)])
    front, side = axes(0, 0), axes(60, 0)
    painted = PaintedViews(np.stack([constant((255, 0, 0)), constant((0, 255, 0))]),
                           np.stack([camera(front), camera(side)]), np.ones(2))  # fmt: skip
    normals = big_v / np.linalg.norm(big_v, axis=1, keepdims=True)
    colours, total = views.sample(painted, vertices, faces, big_v, normals)
    radial = np.linalg.norm(big_v[:, :2], axis=1)
    behind = (radial < 0.15) & (big_v[:, 2] > 0)  # the front view's ray hits the small ball
    open_front = (radial > 0.3) & (big_v[:, 2] > 0.3) & (big_v[:, 0] < -0.3)  # front only
    assert behind.sum() > 10 and open_front.sum() > 10
    # Hidden from the front view, seen by the side one: green only, no red from the front.
    assert (total[behind] > 0).all()
    np.testing.assert_allclose(colours[behind], [[0.0, 1.0, 0.0]] * behind.sum(), atol=1e-6)
    np.testing.assert_allclose(colours[open_front], [[1.0, 0.0, 0.0]] * open_front.sum(),
                               atol=1e-6)  # fmt: skip
    back = (normals @ front[2] < 0) & (normals @ side[2] < 0)  # faces away from both views
    assert (total[back] == 0).all()


def test_depth_test_holds_on_views_coarser_than_the_mesh() -> None:
    """Slanted surfaces stay visible when a view pixel spans many triangles: the depth map is
    finer than the image and its pixels' surfaces are extended to the point."""
    vertices, faces = sphere(0.5, 5)
    rotation = axes(0, 0)
    painted = PaintedViews(constant((200, 100, 50), 8)[None], camera(rotation, 8)[None],
                           np.ones(1))  # fmt: skip
    normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    _, total = views.sample(painted, vertices, faces, vertices, normals)
    facing = normals @ rotation[2] > math.cos(math.radians(tolerances.VIEW_MAX_ANGLE_DEG)) + 0.02
    assert (total[facing] > 0).mean() > 0.99


def test_fill_takes_the_nearest_seen_points() -> None:
    points = np.stack([np.linspace(0, 1, 11), np.zeros(11), np.zeros(11)], axis=1)
    colours = np.zeros((11, 3), np.float32)
    colours[:5], colours[6:] = 0.2, 0.8
    seen = np.ones(11, bool)
    seen[5] = False
    filled = views.fill_unseen(points, colours, seen)
    np.testing.assert_array_equal(filled[seen], colours[seen])
    assert filled[5, 0] == pytest.approx(0.5)  # halfway between, equally near both sides
    nothing = views.fill_unseen(points, colours, np.zeros(11, bool))
    assert np.all(nothing == views.NO_VIEW_GREY)


def test_the_bake_projects_the_views_onto_the_low_resolution_atlas(four_views) -> None:
    painted, vertices, faces = four_views
    reduced = decimate.decimate(vertices, faces, 800)
    mapped = uv.unwrap(reduced.vertices, reduced.faces, 256)
    normals = tangents.vertex_normals(mapped.vertices, mapped.faces, mapped.source_vertex)
    frame = tangents.vertex_tangents(mapped.vertices, mapped.faces, mapped.uvs, normals)
    target = bake.BakeTarget(mapped.vertices, mapped.faces, mapped.uvs, normals, frame,
                             mapped.chart, mapped.source_vertex)  # fmt: skip
    maps = bake.bake(bake.BakeSource(vertices, faces, views=painted), target, 256)
    assert 0.9 < maps.views_seen < 1.0  # the polar caps are filled, not seen
    face_id, bary = raster.rasterize(target.uvs, target.faces, 256, 256)
    rows, cols = np.nonzero(face_id >= 0)
    points = np.einsum("kj,kjc->kc", bary[rows, cols],
                       target.vertices[target.faces[face_id[rows, cols]]])  # fmt: skip
    on_sphere = points / np.linalg.norm(points, axis=1, keepdims=True) * 0.5
    seen = np.abs(on_sphere[:, 1]) < 0.45  # well away from the unseen caps
    error = np.abs(maps.base_color[rows, cols] / 255.0 - analytic_color(on_sphere))[seen]
    assert error.mean() < 0.02
