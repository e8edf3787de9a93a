"""A job's kept raw output: arrays as they were, fields as their samples at the vertices."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import trimesh

from backend.geometry.overlap import Beside
from backend.geometry.raw_asset import PaintedViews, RawAsset, orthographic_camera
from backend.geometry.raw_store import load_raw, raw_arrays, save_raw, write_raw
from tests.support.small_disk import SmallDisk, small_disk  # noqa: F401 (a fixture)


def ball() -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    return mesh.vertices.astype(np.float32), mesh.faces


def test_fields_are_kept_as_their_vertex_samples(tmp_path) -> None:
    vertices, faces = ball()
    colour = lambda p: np.clip(p * 0.5 + 0.5, 0, 1)  # noqa: E731 (a field is a callable)
    material = lambda p: np.stack([np.abs(p[:, 0]), np.abs(p[:, 1])], 1)  # noqa: E731
    raw = RawAsset(vertices, faces, color_field=colour, material_field=material,
                   roughness=0.4, metallic=0.1, name="ball")  # fmt: skip
    size = save_raw(raw, tmp_path / "raw.npz")
    assert size == (tmp_path / "raw.npz").stat().st_size > 0
    back = load_raw(tmp_path / "raw.npz")
    np.testing.assert_array_equal(back.vertices, vertices)
    np.testing.assert_array_equal(back.faces, faces)
    np.testing.assert_allclose(back.vertex_colors, colour(vertices), atol=1 / 255)
    # The material comes back as a field again: the nearest vertex's sample.
    np.testing.assert_allclose(back.material_field(vertices * 1.001), material(vertices),
                               atol=1 / 255)  # fmt: skip
    assert (back.roughness, back.metallic, back.name) == (np.float32(0.4), np.float32(0.1), "ball")


def test_painted_views_and_textures_are_kept_as_they_are(tmp_path) -> None:
    vertices, faces = ball()
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 4), dtype=np.uint8)
    camera = orthographic_camera(np.eye(3), np.zeros(3), 4.0, (4.0, 4.0))
    views = PaintedViews(images, np.stack([camera, camera]), np.ones(2))
    uvs = np.random.default_rng(1).random((len(vertices), 2)).astype(np.float32)
    texture = images[0, :, :, :3]
    raw = RawAsset(vertices, faces, uvs=uvs, texture=texture, views=views)
    back = load_raw(tmp_path / "raw.npz") if save_raw(raw, tmp_path / "raw.npz") else None
    np.testing.assert_array_equal(back.views.images, images)
    np.testing.assert_array_equal(back.views.cameras, views.cameras)
    np.testing.assert_array_equal(back.uvs, uvs)
    np.testing.assert_array_equal(back.texture, texture)


def test_the_file_is_a_plain_npz_whatever_the_deflate_level(tmp_path) -> None:
    vertices, faces = ball()
    raw = RawAsset(vertices, faces, vertex_colors=np.clip(vertices * 0.5 + 0.5, 0, 1), name="b")
    size = save_raw(raw, tmp_path / "raw.npz")
    with np.load(tmp_path / "raw.npz", allow_pickle=False) as data:  # numpy's own reader
        assert sorted(data.files) == ["faces", "name", "scalars", "vertex_colors", "vertices"]
        np.testing.assert_array_equal(data["vertices"], vertices)
    # Compressed: well under the arrays' raw bytes (positions, int32 faces, colours).
    assert size < vertices.nbytes + faces.size * 4 + vertices.size


def test_the_writer_writes_while_the_caller_goes_on_and_hands_back_the_size(tmp_path) -> None:
    vertices, faces = ball()
    arrays = raw_arrays(RawAsset(vertices, faces, name="b"))
    writer = Beside(write_raw, arrays, tmp_path / "kept" / "raw.npz")
    assert writer.result() == (tmp_path / "kept" / "raw.npz").stat().st_size
    np.testing.assert_array_equal(load_raw(tmp_path / "kept" / "raw.npz").faces, faces)


def test_a_failed_write_raises_its_own_error_in_the_caller_and_leaves_no_partial_file(
    small_disk: SmallDisk,  # noqa: F811 (the fixture)
) -> None:
    rng = np.random.default_rng(0)  # noise does not compress: 12 MB cannot fit in 8 MiB
    vertices = rng.random((1_000_000, 3), dtype=np.float32)
    arrays = raw_arrays(RawAsset(vertices, np.zeros((1, 3), np.int64), name="big"))
    writer = Beside(write_raw, arrays, small_disk.path / "raw.npz")
    with pytest.raises(OSError) as caught:
        writer.result()
    assert caught.value.errno == errno.ENOSPC
    assert list(small_disk.path.iterdir()) == []  # neither raw.npz nor raw.npz.partial
