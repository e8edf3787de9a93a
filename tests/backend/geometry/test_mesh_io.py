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
