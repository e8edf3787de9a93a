"""Export: GLB (validator + Blender), OBJ zip, PLY, STL; placement on the ground and height."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import trimesh

from backend.geometry import export, tangents, uv
from tests.support.blender_import import assert_baked_material, import_glb
from tests.support.gltf_validator import error_messages, validate


@pytest.fixture(scope="module")
def export_mesh(sphere_mesh):
    from backend.geometry import decimate

    reduced = decimate.decimate(*sphere_mesh, 800)
    mapped = uv.unwrap(reduced.vertices, reduced.faces, 256)
    normals = tangents.vertex_normals(mapped.vertices, mapped.faces, mapped.source_vertex)
    rng = np.random.default_rng(0)
    return export.ExportMesh(
        vertices=export.place_on_ground(mapped.vertices, 2.0),
        faces=mapped.faces,
        normals=normals,
        uvs=mapped.uvs,
        tangents=tangents.vertex_tangents(mapped.vertices, mapped.faces, mapped.uvs, normals),
        weld=mapped.source_vertex,
        base_color=rng.integers(0, 255, (256, 256, 3), dtype=np.uint8),
        normal_map=np.full((256, 256, 3), (128, 128, 255), dtype=np.uint8),
        metallic_roughness=np.full((256, 256, 3), (255, 100, 20), dtype=np.uint8),
        name="sphere",
    )


def test_place_on_ground_centres_the_bottom_and_scales_height():
    vertices = np.array([[1, 2, 3], [3, 6, 5]], dtype=np.float32)
    placed = export.place_on_ground(vertices, height_m=2.0)
    np.testing.assert_allclose(placed.min(axis=0), [-0.5, 0, -0.5])  # 4 high -> 2: x0.5
    np.testing.assert_allclose(placed.max(axis=0), [0.5, 2, 0.5])


def test_glb_is_valid_and_imports_in_blender(export_mesh, tmp_path):
    path = tmp_path / "sphere.glb"
    path.write_bytes(export.export(export_mesh, "glb"))
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    info = import_glb(path)
    assert_baked_material(info, len(export_mesh.faces))
    assert info["materials"][0]["roughness"]["type"] == "SEPARATE_COLOR"  # from the MR texture


def test_obj_zip_holds_obj_mtl_and_maps(export_mesh):
    payload = export.export(export_mesh, "obj")
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        names = set(archive.namelist())
        assert {"sphere.obj", "sphere.mtl", "base_color.png", "normal.png"} <= names
        mtl = archive.read("sphere.mtl").decode()
        assert "map_Kd base_color.png" in mtl and "map_Bump normal.png" in mtl
        obj = archive.read("sphere.obj").decode()
    loaded = trimesh.load(io.BytesIO(obj.encode()), file_type="obj", process=False)
    assert len(loaded.faces) == len(export_mesh.faces)


@pytest.mark.parametrize("fmt", ["ply", "stl"])
def test_ply_and_stl_round_trip_welded(export_mesh, fmt):
    loaded = trimesh.load(io.BytesIO(export.export(export_mesh, fmt)), file_type=fmt)
    assert len(loaded.faces) == len(export_mesh.faces)
    assert loaded.is_watertight  # seam copies are joined again
    if fmt == "ply":
        assert loaded.visual.kind == "vertex"


def _glb_images(payload: bytes) -> tuple[dict, list[np.ndarray]]:
    """(the GLB's JSON, its images decoded) from the JSON and BIN chunks."""
    import json
    import struct

    from PIL import Image

    json_length = struct.unpack("<I", payload[12:16])[0]
    document = json.loads(payload[20 : 20 + json_length])
    binary = payload[20 + json_length + 8 :]
    decoded = []
    for image in document.get("images", []):
        view = document["bufferViews"][image["bufferView"]]
        start = view.get("byteOffset", 0)
        png = binary[start : start + view["byteLength"]]
        decoded.append(np.asarray(Image.open(io.BytesIO(png))))
    return document, decoded


def test_glb_maps_are_pixel_identical_in_their_slots(export_mesh):
    document, decoded = _glb_images(export.export(export_mesh, "glb"))
    material = document["materials"][0]
    slots = {
        "base": material["pbrMetallicRoughness"]["baseColorTexture"]["index"],
        "mr": material["pbrMetallicRoughness"]["metallicRoughnessTexture"]["index"],
        "normal": material["normalTexture"]["index"],
    }
    expected = {
        "base": export_mesh.base_color,
        "mr": export_mesh.metallic_roughness,
        "normal": export_mesh.normal_map,
    }
    for slot, texture in slots.items():
        source = document["textures"][texture]["source"]
        np.testing.assert_array_equal(decoded[source], expected[slot][..., :3], err_msg=slot)


def test_glb_keeps_rgba_only_when_blended(export_mesh):
    from dataclasses import replace

    rgba = np.dstack([export_mesh.base_color, np.full((256, 256), 255, np.uint8)])
    rgba[:10, :10, 3] = 40  # some see-through texels
    _, opaque = _glb_images(export.export(replace(export_mesh, base_color=rgba), "glb"))
    assert opaque[0].shape == (256, 256, 3)  # an alpha the model did not ask for is dropped
    blended = replace(export_mesh, base_color=rgba, alpha_blend=True)
    document, images = _glb_images(export.export(blended, "glb"))
    assert document["materials"][0]["alphaMode"] == "BLEND"
    np.testing.assert_array_equal(images[0], rgba)


def test_obj_zip_maps_are_pixel_identical(export_mesh):
    from PIL import Image

    with zipfile.ZipFile(io.BytesIO(export.export(export_mesh, "obj"))) as archive:
        for name, image in (
            ("base_color.png", export_mesh.base_color),
            ("normal.png", export_mesh.normal_map),
            ("metallic_roughness.png", export_mesh.metallic_roughness),
        ):
            decoded = np.asarray(Image.open(io.BytesIO(archive.read(name))))
            np.testing.assert_array_equal(decoded, image[..., :3], err_msg=name)
