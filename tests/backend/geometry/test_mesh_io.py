"""mesh_io: PLY with vertex colours, OBJ with a texture, GLB; clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from backend.geometry import mesh_io
from shared_protocol.errors import ErrorCode, ProtocolError


def test_ply_keeps_vertex_colours(sphere_mesh, tmp_path):
    vertices, faces = sphere_mesh
    colours = np.zeros((len(vertices), 4), dtype=np.uint8)
    colours[:, 1] = 200
    colours[:, 3] = 255
    path = tmp_path / "ball.ply"
    trimesh.Trimesh(vertices, faces, vertex_colors=colours, process=False).export(path)
    raw = mesh_io.load_mesh(path)
    assert raw.faces.shape == faces.shape and raw.name == "ball"
    np.testing.assert_allclose(raw.vertex_colors[:, 1], 200 / 255, atol=1e-6)


def test_obj_keeps_texture_and_flips_v(tmp_path):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    uv_up = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32)
    image = Image.fromarray(np.full((8, 8, 3), 77, dtype=np.uint8))
    visual = trimesh.visual.TextureVisuals(uv=uv_up, image=image)
    mesh = trimesh.Trimesh(vertices, [[0, 1, 2]], visual=visual, process=False)
    path = tmp_path / "tri.obj"
    mesh.export(path)
    raw = mesh_io.load_mesh(path)
    assert raw.texture is not None and raw.texture[0, 0, 0] == 77
    order = np.argsort(raw.vertices[:, 0] + 2 * raw.vertices[:, 1])
    np.testing.assert_allclose(raw.uvs[order], [[0, 1], [1, 1], [0, 0]], atol=1e-6)


def test_unknown_suffix_and_missing_file_are_errors(tmp_path):
    with pytest.raises(ProtocolError) as caught:
        mesh_io.load_mesh(tmp_path / "model.fbx")
    assert caught.value.code == ErrorCode.INVALID_FIELD
    with pytest.raises(ProtocolError):
        mesh_io.load_mesh(tmp_path / "absent.glb")


def test_binary_ply_fast_path_reads_what_trimesh_reads(tmp_path, blob_mesh, blob_colors):
    """The direct binary PLY reader (no trimesh) gives the same vertices, faces and colours,
    and files it does not handle (ASCII, quads) still read through trimesh."""
    import trimesh

    from backend.geometry import ply_binary

    vertices, faces = blob_mesh
    rgba = (np.clip(blob_colors, 0, 1) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices, faces, vertex_colors=rgba, process=False)
    path = tmp_path / "blob.ply"
    mesh.export(path)
    fast = ply_binary.read(path.read_bytes(), "blob")
    assert fast is not None
    loaded = mesh_io.load_mesh(path)
    np.testing.assert_array_equal(fast.faces, faces)
    np.testing.assert_allclose(fast.vertices, vertices, rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast.vertex_colors, rgba[:, :3] / 255.0, atol=1e-7)
    np.testing.assert_array_equal(loaded.faces, fast.faces)
    ascii_path = tmp_path / "ascii.ply"
    ascii_path.write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="ascii"))
    assert ply_binary.read(ascii_path.read_bytes(), "ascii") is None
    assert len(mesh_io.load_mesh(ascii_path).faces) == len(faces)
    quad = b"ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n"
    quad += b"property float y\nproperty float z\nelement face 1\n"
    quad += b"property list uchar int vertex_indices\nend_header\n"
    quad += np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], "<f4").tobytes()
    quad += bytes([4]) + np.array([0, 1, 2, 3], "<i4").tobytes()
    assert ply_binary.read(quad, "quad") is None
    (tmp_path / "quad.ply").write_bytes(quad)
    assert len(mesh_io.load_mesh(tmp_path / "quad.ply").faces) == 2  # trimesh triangulates
