"""Multi-view baking onto a UV atlas: views rendered from a known colour come back."""

from __future__ import annotations

import math

import torch

from backend.models.hunyuan3d.paint_bake import (
    VIEW_WEIGHTS,
    Camera,
    atlas_texels,
    bake_views,
    inpaint,
    normalise,
    paint_cameras,
    render_view,
)


def uv_sphere(
    rings: int = 24, segments: int = 48
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A squashed sphere with a latitude-longitude UV layout (seam duplicated)."""
    vertices, uvs = [], []
    for i in range(rings + 1):
        theta = math.pi * i / rings
        for j in range(segments + 1):
            phi = 2 * math.pi * j / segments
            vertices.append(
                [
                    0.7 * math.sin(theta) * math.sin(phi),
                    math.cos(theta),
                    0.9 * math.sin(theta) * math.cos(phi),
                ]
            )
            uvs.append([j / segments, i / rings])
    faces = []
    for i in range(rings):
        for j in range(segments):
            a, b = i * (segments + 1) + j, i * (segments + 1) + j + 1
            c, d = a + segments + 1, b + segments + 1
            faces += [[a, c, b], [b, c, d]]
    return torch.tensor(vertices), torch.tensor(faces), torch.tensor(uvs)


def test_cameras_look_at_the_named_sides() -> None:
    front, left, back, _, top, bottom = paint_cameras()
    assert torch.allclose(front.rotation[2], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(left.rotation[2], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(back.rotation[2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    assert torch.allclose(top.rotation[2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    # the front camera draws +Y up (row 0 at the top) and +X to the right
    screen = front.to_screen(torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, 0.0]]), 100)
    assert screen[0, 1] < 50 and screen[1, 0] > 50
    assert torch.allclose(bottom.rotation[2], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)


def test_views_of_a_known_colour_bake_back_onto_the_atlas() -> None:
    vertices, faces, uvs = uv_sphere()
    vertices, _, _ = normalise(vertices)
    cameras = paint_cameras()
    renders = [render_view(vertices, faces, camera, 96) for camera in cameras]
    # The "generated views": each pixel shows the colour (point + 0.5) of the surface it sees.
    images = [render.position for render in renders]
    depths = [render.raster.depth for render in renders]
    atlas = atlas_texels(vertices, faces, uvs, 64)
    texture, seen = bake_views(atlas, images, cameras, depths, VIEW_WEIGHTS)
    assert seen.sum() > 0.9 * len(atlas.rows)
    expected = (atlas.points + 0.5).clamp(0, 1)
    error = (texture[atlas.rows, atlas.cols] - expected)[seen[atlas.rows, atlas.cols]].abs()
    assert error.mean() < 0.01 and error.max() < 0.1
    filled = inpaint(texture, seen)
    assert torch.equal(filled[seen], texture[seen])
    unseen = ~seen[atlas.rows, atlas.cols]
    if unseen.any():
        assert (filled[atlas.rows, atlas.cols][unseen] - expected[unseen]).abs().mean() < 0.1


def test_hidden_texels_take_no_colour_from_a_view() -> None:
    vertices, faces, uvs = uv_sphere()
    vertices, _, _ = normalise(vertices)
    camera = Camera.orbit(0.0, 0.0)
    render = render_view(vertices, faces, camera, 64)
    atlas = atlas_texels(vertices, faces, uvs, 48)
    red = torch.zeros((64, 64, 3))
    red[..., 0] = 1
    _, seen = bake_views(atlas, [red], [camera], [render.raster.depth], (1.0,))
    seen_points = atlas.points[seen[atlas.rows, atlas.cols]]
    assert (seen_points[:, 2] > -0.05).all()  # only the front half (facing +Z) is painted


def test_inpaint_fills_holes_smoothly() -> None:
    ramp = torch.linspace(0, 1, 32)[None, :, None].expand(32, 32, 3).clone()
    mask = torch.ones(32, 32, dtype=torch.bool)
    mask[10:20, 8:24] = False
    filled = inpaint(ramp * mask[..., None], mask)
    assert (filled[~mask] - ramp[~mask]).abs().max() < 0.2


def test_occluded_texels_take_no_colour_from_a_view() -> None:
    big_v, big_f, big_uv = uv_sphere()
    small_v, small_f, small_uv = uv_sphere(12, 24)
    small_v = small_v * 0.3 + torch.tensor([0.0, 0.0, 1.6])  # a small ball in front of the big one
    vertices = torch.cat([big_v, small_v])
    faces = torch.cat([big_f, small_f + len(big_v)])
    uvs = torch.cat(
        [
            big_uv * torch.tensor([0.5, 1.0]),
            small_uv * torch.tensor([0.5, 1.0]) + 0.5 * torch.tensor([1.0, 0.0]),
        ]
    )
    vertices, centre, scale = normalise(vertices)
    camera = Camera.orbit(0.0, 0.0)
    render = render_view(vertices, faces, camera, 96)
    atlas = atlas_texels(vertices, faces, uvs, 96)
    _, seen = bake_views(atlas, [torch.ones(96, 96, 3)], [camera], [render.raster.depth], (1.0,))
    points = atlas.points / scale + centre  # back to the unnormalised frame
    on_big = atlas.cols < 48
    behind_small = on_big & (points[:, :2].norm(dim=1) < 0.15) & (points[:, 2] > 0.5)
    assert behind_small.sum() > 5
    assert not seen[atlas.rows, atlas.cols][behind_small].any()
    in_the_open = on_big & (points[:, :2].norm(dim=1) > 0.5) & (points[:, 2] > 0.5)
    assert seen[atlas.rows, atlas.cols][in_the_open].float().mean() > 0.9
