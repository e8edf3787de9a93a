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
