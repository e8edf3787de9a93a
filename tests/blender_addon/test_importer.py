"""importer.py: placement, origin, size, naming, collection, materials and provenance.

The GLB comes from Blender's own glTF exporter (a box offset from the origin, with a material
and UVs), so these tests need no backend; test_generate.py imports real backend results.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

BOX_SIZE = (2.0, 1.0, 0.5)
BOX_OFFSET = (3.0, -1.0, 2.0)  # the exported mesh does not sit at its origin


@pytest.fixture
def glb(fresh, tmp_path: Path) -> Path:
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=BOX_OFFSET)
    box = bpy.context.active_object
    box.scale = BOX_SIZE
    material = bpy.data.materials.new("Paint")
    box.data.materials.append(material)
    path = tmp_path / "box.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    return path


def world_points(obj) -> np.ndarray:
    """(n, 3) vertex positions in world space."""
    coords = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
    obj.data.vertices.foreach_get("co", coords)
    local = np.c_[coords.reshape(-1, 3), np.ones(len(obj.data.vertices))]
    return (local @ np.array(obj.matrix_world).T)[:, :3]


def provenance(importer, **overrides):
    values = dict(prompt="a  small\tred box", model="procedural", seed=42, job_id="job123",
                  backend_version="0.1.0", settings={"target_faces": 500, "parameters": {"a": 1}},
                  inputs={})
    values.update(overrides)
    return importer.Provenance(**values)


def test_at_cursor_with_bottom_centre_origin(fresh, glb: Path) -> None:
    importer = fresh.importer
    cursor = (1.0, 2.0, 3.0)
    obj = importer.import_glb(glb, "Box", importer.Placement(location=cursor),
                              provenance(importer))
    assert tuple(obj.location) == pytest.approx(cursor)
    points = world_points(obj)
    low, high = points.min(axis=0), points.max(axis=0)
    assert (low[:2] + high[:2]) / 2 == pytest.approx(cursor[:2], abs=1e-5)
    assert low[2] == pytest.approx(cursor[2], abs=1e-5)
    # glTF is Y-up; Blender's importer turns it back to Z-up, so the box keeps its proportions.
    assert sorted(high - low) == pytest.approx(sorted(BOX_SIZE), abs=1e-5)
    assert tuple(obj.scale) == pytest.approx((1, 1, 1))


def test_target_size_scales_the_largest_side(fresh, glb: Path) -> None:
    importer = fresh.importer
    obj = importer.import_glb(glb, "Box", importer.Placement(target_size=0.5),
                              provenance(importer))
    assert max(obj.dimensions) == pytest.approx(0.5, abs=1e-5)
    assert obj.dimensions[2] == pytest.approx(0.5 * BOX_SIZE[2] / BOX_SIZE[0], abs=1e-5)


def test_align_to_selected_takes_its_place_turn_and_size(fresh, glb: Path) -> None:
    importer = fresh.importer
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(5.0, 0.0, 1.0), rotation=(0, 0, 0.7))
    target = bpy.context.active_object
    obj = importer.import_glb(glb, "Box", importer.Placement(mode="ALIGN", target=target.name),
                              provenance(importer))
    assert tuple(obj.location) == pytest.approx((5.0, 0.0, 0.0), abs=1e-5)  # its bottom centre
    assert obj.rotation_euler[2] == pytest.approx(0.7, abs=1e-5)
    assert max(obj.dimensions) == pytest.approx(2.0, abs=1e-5)
    assert target.name in bpy.data.objects


def test_replace_selected_removes_it(fresh, glb: Path) -> None:
    importer = fresh.importer
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 4.0, 0.5))
    target_name = bpy.context.active_object.name
    obj = importer.import_glb(glb, "Box", importer.Placement(mode="REPLACE", target=target_name),
                              provenance(importer))
    assert target_name not in bpy.data.objects
    assert tuple(obj.location) == pytest.approx((0.0, 4.0, 0.0), abs=1e-5)


def test_collection_name_materials_uvs_and_selection(fresh, glb: Path) -> None:
    importer = fresh.importer
    obj = importer.import_glb(glb, "Red Box", importer.Placement(), provenance(importer))
    assert obj.name == "Red Box" and obj.data.name == "Red Box"
    assert [c.name for c in obj.users_collection] == [importer.COLLECTION_NAME]
    assert importer.COLLECTION_NAME in bpy.context.scene.collection.children
    assert [o for o in bpy.data.objects] == [obj]  # glTF node empties are gone
    material = obj.material_slots[0].material
    assert material.node_tree is not None
    assert any(n.type == "BSDF_PRINCIPLED" for n in material.node_tree.nodes)
    assert len(obj.data.uv_layers) >= 1
    assert bpy.context.view_layer.objects.active == obj and obj.select_get()


def test_provenance_round_trips_through_custom_properties(fresh, glb: Path) -> None:
    importer = fresh.importer
    made = provenance(importer, seed=2**32 - 1, inputs={"image": "/tmp/x.png"})
    obj = importer.import_glb(glb, "Box", importer.Placement(), made)
    assert obj["dreamcad_prompt"] == made.prompt and obj["dreamcad_model"] == "procedural"
    assert obj["dreamcad_job_id"] == "job123" and obj["dreamcad_backend_version"] == "0.1.0"
    assert importer.provenance_of(obj) == made  # a seed past 2**31 survives too
    assert importer.imported_job_ids() == {"job123"}
    bpy.ops.mesh.primitive_cube_add()
    assert importer.provenance_of(bpy.context.active_object) is None


def test_object_name_from_prompt(fresh) -> None:
    object_name = fresh.importer.object_name
    assert object_name("a  small\tred box") == "A small red box"
    long_name = object_name("word " * 40)
    assert len(long_name) <= fresh.importer.MAX_NAME_CHARS and not long_name.endswith(" ")
    assert object_name("   ", "fallback.png") == "fallback.png"


def test_a_file_without_a_mesh_is_a_clear_error(fresh, tmp_path: Path) -> None:
    from shared_protocol.errors import ErrorCode, ProtocolError

    bpy.ops.object.empty_add()
    path = tmp_path / "empty.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB")
    bpy.ops.wm.read_homefile(use_empty=True)
    importer = fresh.importer
    with pytest.raises(ProtocolError) as caught:
        importer.import_glb(path, "X", importer.Placement(), provenance(importer))
    assert caught.value.code is ErrorCode.GEOMETRY_FAILED
    assert len(bpy.data.objects) == 0
    with pytest.raises(ProtocolError) as missing:
        importer.import_glb(tmp_path / "nope.glb", "X", importer.Placement(),
                            provenance(importer))
    assert missing.value.code is ErrorCode.RESULT_EXPIRED
