"""Bake: base colour against the analytic colour, normal map round trip, dilation."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import bake, decimate, raster, tangents, uv
from tests.support.analytic_meshes import analytic_color


@pytest.fixture(scope="module")
def baked_sphere(sphere_mesh):
    vertices, faces = sphere_mesh
    reduced = decimate.decimate(vertices, faces, 2000)
    mapped = uv.unwrap(reduced.vertices, reduced.faces, 512)
    normals = tangents.vertex_normals(mapped.vertices, mapped.faces, mapped.source_vertex)
    frame = tangents.vertex_tangents(mapped.vertices, mapped.faces, mapped.uvs, normals)
    target = bake.BakeTarget(mapped.vertices, mapped.faces, mapped.uvs, normals, frame,
                             mapped.chart, mapped.source_vertex)  # fmt: skip
    source = bake.BakeSource(vertices, faces, vertex_colors=analytic_color(vertices))
    return target, bake.bake(source, target, 512)


def _texel_points(target, size):
    face_id, bary = raster.rasterize(target.uvs, target.faces, size, size)
    rows, cols = np.nonzero(face_id >= 0)
    corners = target.faces[face_id[rows, cols]]
    points = np.einsum("kj,kjc->kc", bary[rows, cols], target.vertices[corners])
    return rows, cols, points, face_id[rows, cols], bary[rows, cols]


def test_base_color_matches_the_analytic_colour(baked_sphere):
    target, maps = baked_sphere
    rows, cols, points, _, _ = _texel_points(target, 512)
    error = np.abs(maps.base_color[rows, cols] / 255.0 - analytic_color(points)).mean() * 255
    assert error < 2.0
    assert maps.coverage > 0.3


def test_normal_map_decodes_to_the_sphere_normal(baked_sphere):
    target, maps = baked_sphere
    rows, cols, points, face, bary = _texel_points(target, 512)
    encoded = maps.normal[rows, cols] / 255.0 * 2.0 - 1.0
    corners = target.faces[face]
    n = np.einsum("kj,kjc->kc", bary, target.normals[corners])
    t = np.einsum("kj,kjc->kc", bary, target.tangents[corners, :3])
    b = np.cross(n, t)
    decoded = encoded[:, :1] * t + encoded[:, 1:2] * b + encoded[:, 2:3] * n
    decoded /= np.linalg.norm(decoded, axis=1, keepdims=True)
    truth = points / np.linalg.norm(points, axis=1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(np.sum(decoded * truth, axis=1), -1, 1)))
    assert np.median(angle) < 2.0
    assert np.percentile(angle, 99) < 8.0


def test_dilation_fills_past_chart_borders(baked_sphere):
    target, maps = baked_sphere
    face_id, _ = raster.rasterize(target.uvs, target.faces, 512, 512)
    empty = face_id < 0
    near = np.zeros_like(empty)
    for dr in (-2, 0, 2):
        for dc in (-2, 0, 2):
            near |= np.roll(face_id >= 0, (dr, dc), axis=(0, 1))
    band = empty & near
    assert band.any()
    assert np.all(maps.base_color[band].max(axis=1) > 0)  # not left black


def test_color_field_and_material_field_are_queried(sphere_mesh, baked_sphere):
    target, _ = baked_sphere
    vertices, faces = sphere_mesh
    calls = []

    def material(points):
        calls.append(len(points))
        return np.tile([[0.25, 0.75]], (len(points), 1))

    source = bake.BakeSource(vertices, faces, color_field=analytic_color, material_field=material)
    maps = bake.bake(source, target, 256)
    assert calls and maps.metallic_roughness is not None
    rows, cols, *_ = _texel_points(target, 256)
    assert np.allclose(maps.metallic_roughness[rows, cols, 1], 64, atol=1)  # G = roughness
    assert np.allclose(maps.metallic_roughness[rows, cols, 2], 191, atol=1)  # B = metallic


def test_torch_bake_on_cpu_matches_the_compiled_bake(sphere_mesh, baked_sphere):
    pytest.importorskip("torch")
    target, compiled = baked_sphere
    vertices, faces = sphere_mesh
    source = bake.BakeSource(vertices, faces, vertex_colors=analytic_color(vertices))
    with_torch = bake.bake(source, target, 512, device="cpu")
    assert abs(with_torch.coverage - compiled.coverage) < 1e-3
    for name in ("base_color", "normal"):
        # Same closest faces, atlas raster, splat winners and dilation rounds: the same bytes.
        np.testing.assert_array_equal(getattr(with_torch, name), getattr(compiled, name), name)


def test_torch_field_form_is_used_on_a_device(sphere_mesh, baked_sphere):
    torch = pytest.importorskip("torch")
    target, _ = baked_sphere
    vertices, faces = sphere_mesh
    batches = []

    def color(points):
        raise AssertionError("the numpy form must not be called when a torch form exists")

    def color_torch(points):
        batches.append(len(points))
        return torch.as_tensor(analytic_color(points.numpy()))

    color.torch_field = color_torch
    source = bake.BakeSource(vertices, faces, color_field=color)
    maps = bake.bake(source, target, 256, device="cpu")
    plain = bake.bake(bake.BakeSource(vertices, faces, color_field=analytic_color), target, 256)
    assert len(batches) == 1  # one large batch, not FIELD_CHUNK-sized calls
    diff = np.abs(maps.base_color.astype(np.int16) - plain.base_color.astype(np.int16))
    assert np.mean(diff <= 1) > 0.999


def test_texel_blocks_quantize_side_by_side_as_one_float32_block():
    rng = np.random.default_rng(5)
    texels = rng.uniform(-0.1, 1.1, (1000, 7))
    colour = texels[:, :3]  # float64 and strided, as a field's answer may be
    normal = texels[:, 3:6].astype(np.float32)
    alpha = np.full((1000, 1), np.nan, np.float32)  # a broken field: reads as 0
    out = bake._to_uint8([colour, normal, alpha])
    stacked = np.hstack([colour, normal]).astype(np.float32).astype(np.float64)
    expected = np.clip(np.rint(stacked * 255.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out[:, :6], expected)
    assert out.shape == (1000, 7) and (out[:, 6] == 0).all()


def test_texel_blocks_go_straight_into_the_map_with_their_byte_sums():
    rng = np.random.default_rng(9)
    size = 16
    flat = np.sort(rng.choice(size * size, 100, replace=False))
    colour = rng.uniform(-0.1, 1.1, (100, 3))
    normal = rng.uniform(0.0, 1.0, (100, 3)).astype(np.float32)
    image, filled, sums = bake._to_image([colour, normal], flat, size)
    texel_bytes = bake._to_uint8([colour, normal])  # the bytes, as a (k, c) block
    expected = np.zeros((size * size, 6), np.uint8)
    expected[flat] = texel_bytes
    np.testing.assert_array_equal(image.reshape(-1, 6), expected)
    assert filled.sum() == 100 and filled.reshape(-1)[flat].all()
    np.testing.assert_array_equal(sums, texel_bytes.sum(axis=0, dtype=np.int64))
    assert np.array_equal(np.rint(sums / 100), np.rint(texel_bytes.mean(axis=0)))


def test_given_source_normals_are_the_ones_baked(sphere_mesh, baked_sphere):
    """The pipeline makes the source normals beside the decimation and hands them over: the
    same normals give the same bytes, and other normals a different normal map (they are used,
    not made again)."""
    target, made_here = baked_sphere
    vertices, faces = sphere_mesh
    source = bake.BakeSource(vertices, faces, vertex_colors=analytic_color(vertices))
    normals = tangents.vertex_normals(vertices, faces)
    given = bake.bake(source, target, 512, source_normals=normals)
    for name in ("base_color", "normal"):
        np.testing.assert_array_equal(getattr(given, name), getattr(made_here, name), name)
    tilted = normals[:, [1, 2, 0]]  # unit normals, wrong ones
    other = bake.bake(source, target, 512, source_normals=tilted)
    np.testing.assert_array_equal(other.base_color, made_here.base_color)
    assert not np.array_equal(other.normal, made_here.normal)


def _sources(vertices, faces):
    """One bake source per colour route the bake takes, each with something that varies."""
    from backend.geometry.raw_asset import PaintedViews, orthographic_camera

    def color(points):
        return analytic_color(points).astype(np.float32)

    def color_torch(points):  # the field's torch form: runs where the points are
        import torch

        return torch.as_tensor(analytic_color(points.cpu().numpy()), device=points.device)

    color.torch_field = color_torch
    rng = np.random.default_rng(4)
    texture = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    spherical = np.column_stack([np.arctan2(vertices[:, 2], vertices[:, 0]) / (2 * np.pi) + 0.5,
                                 vertices[:, 1] * 0.5 + 0.5])  # fmt: skip
    column, row = np.meshgrid(np.linspace(-1, 1, 32), np.linspace(1, -1, 32))
    front = np.column_stack([column.ravel(), row.ravel(), np.zeros(column.size)])
    painted = PaintedViews(  # one view from +Z: the back half is filled from the front
        (analytic_color(front) * 255).astype(np.uint8).reshape(1, 32, 32, 3),
        orthographic_camera(np.eye(3), np.zeros(3), 16.0, (16.0, 16.0))[None], np.ones(1),
    )  # fmt: skip

    def rough(points):  # numpy-only: its points come to the host
        return np.column_stack([points[:, 0] * 0.5 + 0.5, np.abs(points[:, 1])])

    def alpha(points):
        return np.where(points[:, 1:2] > 0.2, 0.25, np.nan).astype(np.float32)  # NaN: 0

    return {
        "vertex colours": bake.BakeSource(vertices, faces, vertex_colors=color(vertices) * 1.1),
        "torch field, material, alpha": bake.BakeSource(
            vertices, faces, color_field=color, material_field=rough, alpha_field=alpha),
        "texture": bake.BakeSource(vertices, faces, uvs=spherical, texture=texture),
        "views": bake.BakeSource(vertices, faces, views=painted),
        "grey": bake.BakeSource(vertices, faces),
    }


def test_every_colour_route_bakes_the_same_bytes_on_a_device(sphere_mesh, baked_sphere):
    """The device path keeps the texels where they were splatted and quantises them there
    (torch_bake.quantize): each colour source -- interpolated, a field's torch or numpy form,
    a texture or views sampled on the host, none -- gives the compiled bake's bytes."""
    pytest.importorskip("torch")
    target, _ = baked_sphere
    for name, source in _sources(*sphere_mesh).items():
        compiled = bake.bake(source, target, 256)
        ours = bake.bake(source, target, 256, device="cpu")
        assert ours.coverage == compiled.coverage, name
        for part in ("base_color", "normal", "metallic_roughness"):
            expected, got = getattr(compiled, part), getattr(ours, part)
            assert (expected is None) == (got is None), (name, part)
            if expected is not None:
                np.testing.assert_array_equal(got, expected, f"{name}: {part}")
        assert len(np.unique(compiled.base_color.reshape(-1, compiled.base_color.shape[2]),
                             axis=0)) >= (1 if name == "grey" else 50), name  # fmt: skip


def test_device_quantisation_gives_the_host_bytes():
    torch = pytest.importorskip("torch")
    from backend.geometry import torch_bake

    rng = np.random.default_rng(6)
    texels = rng.uniform(-0.1, 1.1, (5000, 7))
    # Halves between two bytes (both ways of rounding a tie), the float32 ones, NaN, inf.
    texels[:10, 0] = (np.arange(10) + 0.5) / 255.0
    texels[10:20, 1] = np.float32((np.arange(10) + 100.5) / 255.0)
    texels[20:23, 2] = [np.nan, np.inf, -np.inf]
    colour = texels[:, :3]  # float64 and strided
    normal = torch.as_tensor(texels[:, 3:6].astype(np.float32))  # a tensor, as on a device
    alpha = texels[:, 6:].astype(np.float32)
    ours = torch_bake.quantize([colour, normal, alpha], "cpu")
    assert ours.dtype == torch.uint8
    np.testing.assert_array_equal(ours.numpy(), bake._to_uint8([colour, normal.numpy(), alpha]))


def test_a_device_bake_reads_back_the_maps_bytes_only(sphere_mesh, baked_sphere):
    """On a GPU every read-back waits and crosses the bus: the texels stay on the device from
    the splat to the dilation, and the host reads the finished uint8 maps (plus a few small
    sizes: the raster's boxes, the splat's chunk edges), not the float texels (~100 MB at
    2048 px), their indices, the encoded normals or the dilation's grown mask."""
    pytest.importorskip("torch")
    from torch.overrides import TorchFunctionMode

    class ReadBacks(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.bytes = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if getattr(func, "__name__", "") == "cpu":
                self.bytes += out.numel() * out.element_size()
            return out

    target, _ = baked_sphere
    vertices, faces = sphere_mesh
    source = bake.BakeSource(vertices, faces, vertex_colors=analytic_color(vertices))
    size = 512
    with ReadBacks() as reads:
        maps = bake.bake(source, target, size, device="cpu")
    texels = maps.coverage * size**2
    assert texels > 50_000
    small = 8 * len(target.faces) + 4096  # the atlas raster's box sizes, the chunk edges
    assert size**2 * 6 <= reads.bytes <= size**2 * 6 + small, (reads.bytes, texels)
