"""trellis2-4b texturing an artist's mesh on tiny weights: PBR voxels on exactly the mesh's
voxels, a validated GLB with PBR maps on the same geometry (and its UVs), clear errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import CancelToken
from backend.geometry.mesh_io import load_mesh
from backend.geometry.pipeline import run_pipeline
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.trellis2 import testing
from backend.models.trellis2.adapter import Trellis2Adapter
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.gltf_validator import error_messages, validate


def _image() -> np.ndarray:
    pixels = np.zeros((80, 80, 4), np.uint8)
    pixels[20:60, 25:55] = (40, 160, 90, 255)
    return pixels


def _cube_glb(path: Path) -> Path:
    """A box (not centred, not unit) with one UV island per side in a 3 x 2 atlas."""
    import trimesh
    from PIL import Image

    box = trimesh.creation.box(extents=(2.0, 1.0, 1.4))
    vertices, faces, uvs = [], [], []
    for side in range(6):
        axis, sign = side // 2, 1 - 2 * (side % 2)
        u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
        corners = np.zeros((4, 3))
        corners[:, axis] = sign * box.extents[axis] / 2
        for k, (a, b) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
            corners[k, u_axis] = a * box.extents[u_axis] / 2
            corners[k, v_axis] = b * box.extents[v_axis] / 2
        cell = np.array([side % 3, side // 3]) / np.array([3, 2])
        square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) * 0.9 + 0.05
        uvs.append(cell + square / np.array([3, 2]))
        base = 4 * side
        quad = [[base, base + 1, base + 2], [base, base + 2, base + 3]]
        faces += [q if sign > 0 else q[::-1] for q in quad]
        vertices.append(corners + np.array([0.5, 2.0, -0.3]))  # off the origin
    mesh = trimesh.Trimesh(np.concatenate(vertices), np.array(faces), process=False)
    mesh.fix_normals()
    image = Image.fromarray(np.full((16, 16, 3), 128, np.uint8))
    mesh.visual = trimesh.visual.TextureVisuals(
        uv=np.concatenate(uvs), material=trimesh.visual.material.PBRMaterial(baseColorTexture=image)
    )
    path.write_bytes(mesh.export(file_type="glb"))
    return path


@pytest.fixture(scope="module")
def adapter(tiny_trellis2) -> Trellis2Adapter:
    folder, components = tiny_trellis2
    model = Trellis2Adapter(folder)
    model.component_dirs = dict(components)
    model.load("cpu")
    return model


def _request(adapter: Trellis2Adapter, mesh, **overrides) -> GenerationRequest:
    parameters = {**testing.TINY_PARAMETERS["trellis2-4b"], "background": "alpha", **overrides}
    request = GenerationRequest(task="texture", images=(ImagePixels(_image()),), seed=1,
                                parameters=parameters, mesh=mesh)  # fmt: skip
    return adapter.check_inputs(request)


def test_texture_decoder_lands_on_the_meshs_own_voxels(adapter, tmp_path) -> None:
    """The texture decoder climbs the encoder's downsamplings: its PBR voxels are exactly the
    voxelised mesh's (at 512 and at the 1024 grid, twice as fine)."""
    from backend.models.trellis.mesh_extraction import TRELLIS_TO_BACKEND
    from backend.models.trellis2.texturing import TextureRequest, texture_mesh
    from backend.models.trellis2.voxelize import mesh_to_dual_grid, normalise_mesh

    mesh = load_mesh(_cube_glb(tmp_path / "box.glb"))
    for resolution, grid in ((512, 32), (1024, 64)):
        run = TextureRequest(mesh.vertices, mesh.faces, _image(), resolution=resolution,
                             texture=_one_step(adapter))  # fmt: skip
        output = texture_mesh(adapter.pipeline, run, lambda *a: None)
        points = mesh.vertices.astype(np.float64) @ np.asarray(TRELLIS_TO_BACKEND)
        centre, scale = normalise_mesh(points)
        expected = mesh_to_dual_grid((points - centre) * scale, mesh.faces, grid).coords
        keys = (expected[:, 0].astype(np.int64) * grid + expected[:, 1]) * grid + expected[:, 2]
        assert output.pbr.resolution == grid
        np.testing.assert_array_equal(output.pbr.keys, np.sort(keys))
        assert output.tokens * 8 < output.voxels  # the latent is 4x coarser per axis here


def _one_step(adapter: Trellis2Adapter):
    import dataclasses

    return dataclasses.replace(adapter.pipeline.config.samplers["tex_slat_sampler"].settings,
                               steps=1)  # fmt: skip


def _glb_document(payload: bytes) -> dict:
    length = struct.unpack_from("<I", payload, 12)[0]
    return json.loads(payload[20 : 20 + length])


def test_mesh_and_image_to_a_validated_glb_on_the_same_geometry(adapter, tmp_path) -> None:
    from backend.jobs.game_ready import pipeline_options
    from backend.jobs.spec import JobSpec

    mesh = load_mesh(_cube_glb(tmp_path / "box.glb"))
    stages: list[str] = []
    raw = adapter.generate(_request(adapter, mesh), lambda s, *a, **k: stages.append(s),
                           CancelToken())  # fmt: skip
    assert stages[0] == "voxelize" and stages[-1] == "decode"
    np.testing.assert_array_equal(raw.vertices, mesh.vertices)
    np.testing.assert_array_equal(raw.faces, mesh.faces)
    np.testing.assert_array_equal(raw.uvs, mesh.uvs)
    assert raw.color_field is not None and raw.material_field is not None
    colours = raw.color_field(mesh.vertices)
    assert colours.shape == (len(mesh.vertices), 3) and colours.std() > 0.01  # not one colour

    spec = JobSpec(model="trellis2-4b", task="texture", target_faces=5000, texture_size=256,
                   keep_uvs=True)  # fmt: skip
    options = pipeline_options(spec, raw)
    result = run_pipeline(raw, options)
    path = tmp_path / "textured.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    document = _glb_document(result.asset)
    pbr = document["materials"][0]["pbrMetallicRoughness"]
    assert {"baseColorTexture", "metallicRoughnessTexture"} <= set(pbr)
    import trimesh

    out = trimesh.load(path, force="mesh", process=False)
    assert len(out.faces) == len(mesh.faces)  # geometry kept: 12 triangles
    # Same size (the pipeline places the asset; the job records that move for the add-on).
    np.testing.assert_allclose(np.ptp(out.vertices, axis=0), np.ptp(mesh.vertices, axis=0),
                               atol=1e-4)  # fmt: skip


def test_texturing_without_the_encoder_or_an_image_says_what_to_do(tiny_trellis2, tmp_path):
    folder, components = tiny_trellis2
    mesh = load_mesh(_cube_glb(tmp_path / "box.glb"))
    model = Trellis2Adapter(folder)
    model.component_dirs = {k: v for k, v in components.items() if k != "encoder"}
    with pytest.raises(ProtocolError) as error:
        _request(model, mesh)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING and "--with encoder" in error.value.hint
    model.component_dirs = dict(components)
    bare = GenerationRequest(task="texture", parameters={"background": "alpha"}, mesh=mesh)
    with pytest.raises(ProtocolError) as error:
        model.check_inputs(bare)
    assert error.value.field == "images"
