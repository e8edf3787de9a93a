"""mesh_export.py: a scene object -> GLB bytes the Khronos validator accepts, in world space.

Real bpy and Blender's real glTF exporter; the GLB is read back with numpy to check what the
backend will see: modifiers applied, the world transform baked in (glTF +Y up), the material's
image and the colour attribute carried, faces wound outwards even under a mirroring scale.
"""

from __future__ import annotations

import glob
import importlib
import tempfile
from pathlib import Path

import bpy
import numpy as np
import pytest

from tests.blender_addon.glb_reading import chunks, signed_volume, triangles
from tests.blender_addon.mesh_scenes import evaluated_world_points, textured_box
from tests.support.gltf_validator import error_messages, validate


def mesh_export(addon):
    return importlib.import_module(f"{addon.__name__}.mesh_export")


def to_blender_frame(points: np.ndarray) -> np.ndarray:
    """glTF +Y up -> Blender +Z up (x, y, z) -> (x, -z, y)."""
    return np.c_[points[:, 0], -points[:, 2], points[:, 1]]


def test_export_is_valid_world_space_with_modifiers_material_and_colours(fresh, tmp_path):
    box = textured_box(subdivisions=1)
    exported = mesh_export(fresh).export_object(box, bpy.context.evaluated_depsgraph_get())
    path = tmp_path / "crate.glb"
    path.write_bytes(exported.glb)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)

    document, binary = chunks(exported.glb)
    assert len(document["nodes"]) == 1
    node = document["nodes"][0]
    assert not {"matrix", "translation", "rotation", "scale"} & set(node)  # baked in
    ((positions, faces),) = triangles(document, binary)
    assert len(faces) == exported.faces == 6 * 4 * 2  # one simple subdivision: 24 quads
    expected = evaluated_world_points(box)
    got = to_blender_frame(positions)
    assert got.min(axis=0) == pytest.approx(expected.min(axis=0), abs=1e-5)
    assert got.max(axis=0) == pytest.approx(expected.max(axis=0), abs=1e-5)
    low, high = expected.min(axis=0), expected.max(axis=0)
    assert exported.bottom_centre == pytest.approx(((low[0] + high[0]) / 2,
                                                    (low[1] + high[1]) / 2, low[2]), abs=1e-5)
    assert signed_volume(positions, faces) > 0
    primitive = document["meshes"][0]["primitives"][0]
    assert {"POSITION", "TEXCOORD_0", "COLOR_0"} <= set(primitive["attributes"])
    assert "NORMAL" not in primitive["attributes"]  # the backend works them out itself
    material = document["materials"][primitive["material"]]
    assert "baseColorTexture" in material["pbrMetallicRoughness"]
    assert len(document["images"]) == 1
    assert np.array(exported.world_matrix) == pytest.approx(np.array(box.matrix_world))
    assert exported.applied_modifiers == ("Subdivision",)


def test_export_leaves_the_scene_as_it_was(fresh):
    box = textured_box()
    bpy.ops.mesh.primitive_uv_sphere_add(location=(-4.0, 0.0, 0.0))
    sphere = bpy.context.active_object
    box.select_set(True)
    bpy.context.view_layer.objects.active = sphere
    before = (set(bpy.data.objects), set(bpy.data.meshes), set(bpy.data.materials))
    leftovers = set(glob.glob(str(Path(tempfile.gettempdir()) / "dreamcad-mesh-*")))
    mesh_export(fresh).export_object(box, bpy.context.evaluated_depsgraph_get())
    assert (set(bpy.data.objects), set(bpy.data.meshes), set(bpy.data.materials)) == before
    assert {o.name for o in bpy.context.selected_objects} == {box.name, sphere.name}
    assert bpy.context.view_layer.objects.active == sphere
    assert set(glob.glob(str(Path(tempfile.gettempdir()) / "dreamcad-mesh-*"))) <= leftovers


def test_a_mirroring_scale_still_winds_faces_outwards(fresh):
    box = textured_box(subdivisions=0)
    box.scale = (-1.0, 1.0, 1.0)
    bpy.context.view_layer.update()
    exported = mesh_export(fresh).export_object(box, bpy.context.evaluated_depsgraph_get())
    ((positions, faces),) = triangles(*chunks(exported.glb))
    assert signed_volume(positions, faces) > 0


def test_objects_that_cannot_be_sent_are_field_errors(fresh):
    from shared_protocol.errors import ErrorCode, ProtocolError

    bpy.ops.object.empty_add()
    with pytest.raises(ProtocolError) as not_mesh:
        mesh_export(fresh).export_object(bpy.context.active_object,
                                        bpy.context.evaluated_depsgraph_get())
    assert not_mesh.value.code is ErrorCode.INVALID_FIELD and not_mesh.value.field == "mesh"
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube.data.clear_geometry()
    with pytest.raises(ProtocolError) as empty:
        mesh_export(fresh).export_object(cube, bpy.context.evaluated_depsgraph_get())
    assert "no faces" in empty.value.info.message
