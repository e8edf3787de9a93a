"""postprocess_file: a user's textured mesh in, GLB + manifest + preview out, texture baked."""

from __future__ import annotations

import json

import numpy as np
import trimesh
from PIL import Image

from backend.geometry.pipeline import PipelineOptions
from backend.geometry.postprocess import postprocess_file
from tests.support.gltf_validator import validate


def test_textured_glb_round_trip_keeps_its_colours(sphere_mesh, tmp_path):
    vertices, faces = sphere_mesh
    # A textured source: left half of the texture red, right half blue, mapped by x.
    texture = np.zeros((64, 64, 3), dtype=np.uint8)
    texture[:, :32, 0] = 230
    texture[:, 32:, 2] = 230
    uv_up = np.column_stack([(vertices[:, 0] + 0.6) / 1.2, np.full(len(vertices), 0.5)])
    # baseColorFactor 1: glTF multiplies the texture by it (trimesh's default material is 0.4).
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(texture), baseColorFactor=[255, 255, 255, 255]
    )
    visual = trimesh.visual.TextureVisuals(uv=uv_up, material=material)
    source = tmp_path / "ball.glb"
    trimesh.Trimesh(vertices, faces, visual=visual, process=False).export(source)
    out = tmp_path / "out" / "ball_game.glb"
    result = postprocess_file(source, out, PipelineOptions(target_faces=1500, texture_size=256))
    assert out.is_file() and validate(out)["issues"]["numErrors"] == 0
    manifest = json.loads(out.with_name("ball_game.glb.json").read_text())
    assert manifest["faces"] == result.faces and "asset" not in manifest
    assert out.with_name("ball_game.preview.png").is_file()
    loaded = trimesh.load(out, process=False)
    mesh = next(iter(loaded.geometry.values()))
    baked = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB")).reshape(-1, 3)
    assert (baked[:, 0] > 200).mean() > 0.2 and (baked[:, 2] > 200).mean() > 0.2
