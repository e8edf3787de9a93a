"""Reading a sent GLB: every material's colour source kept (flat factors, vertex colours, several
textures in one atlas), the triangle count read from the JSON alone, refusals coded."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from backend.geometry.glb_header import count_triangles
from backend.geometry.mesh_input import read_glb
from shared_protocol.errors import ProtocolError
from tests.support import mesh_glbs


def flat_box(colour, offset=(0, 0, 0)) -> trimesh.Trimesh:
    box = trimesh.creation.box()
    box.apply_translation(offset)
    material = trimesh.visual.material.PBRMaterial(baseColorFactor=[*colour, 255])
    box.visual = trimesh.visual.TextureVisuals(material=material)
    return box


def textured_ball(colour, offset) -> trimesh.Trimesh:
    ball = trimesh.creation.icosphere(subdivisions=1)
    ball.apply_translation(offset)
    image = Image.fromarray(np.full((8, 8, 3), colour, np.uint8))
    uv = np.full((len(ball.vertices), 2), 0.5)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image)
    ball.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return ball


def glb(*parts) -> bytes:
    return trimesh.Scene(list(parts)).export(file_type="glb")


def test_flat_material_colours_become_vertex_colours() -> None:
    raw = read_glb(glb(flat_box((255, 0, 0)), flat_box((0, 0, 255), (3, 0, 0))))
    assert raw.texture is None and raw.vertex_colors is not None
    red = raw.vertices[:, 0] < 1.5
    np.testing.assert_allclose(raw.vertex_colors[red].mean(0), (1, 0, 0), atol=1e-3)
    np.testing.assert_allclose(raw.vertex_colors[~red].mean(0), (0, 0, 1), atol=1e-3)


def test_several_textures_share_one_atlas_each_part_sampling_its_own() -> None:
    raw = read_glb(glb(textured_ball((250, 0, 0), (0, 0, 0)),
                       textured_ball((0, 250, 0), (3, 0, 0))))  # fmt: skip
    height, width = raw.texture.shape[:2]
    rows = np.clip((raw.uvs[:, 1] * height).astype(int), 0, height - 1)
    columns = np.clip((raw.uvs[:, 0] * width).astype(int), 0, width - 1)
    sampled = raw.texture[rows, columns, :3].astype(int)
    first = raw.vertices[:, 0] < 1.5
    assert (sampled[first] == (250, 0, 0)).all() and (sampled[~first] == (0, 250, 0)).all()


def test_triangles_are_counted_per_drawing_node_and_refusals_are_coded() -> None:
    data, outer, inner = mesh_glbs.textured_shells(rows=12)
    assert count_triangles(data, "mesh.data") == outer + inner == len(read_glb(data).faces)
    for bad, code in ((b"PK\x03\x04 zip", "invalid_mesh"), (data[:30], "invalid_mesh"),
                      (mesh_glbs.empty_glb(), "invalid_mesh")):  # fmt: skip
        with pytest.raises(ProtocolError) as caught:
            count_triangles(bad, "mesh.data")
        assert (caught.value.code.value, caught.value.field) == (code, "mesh.data")
