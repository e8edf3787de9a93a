"""operators/mesh_jobs.py: the scene's own meshes through a real backend and back in place.

A box built in bpy (moved, turned, non-uniformly scaled, with a modifier, an image material and
colours) goes out as a GLB, through the real backend's built-in ``mesh-optimize`` and geometry
pipeline, and comes back onto the same object or beside it; the checks are on world-space
positions, so a result put anywhere but where the object is fails them.
"""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest

from tests.blender_addon.conftest import pump
from tests.blender_addon.mesh_scenes import evaluated_world_points, textured_box, world_points

FACES = 600  # budget for the box: its 3 simple subdivisions give 768 triangles


def bounds(points: np.ndarray) -> np.ndarray:
    return np.stack([points.min(axis=0), points.max(axis=0)])


def game_ready_settings(**values) -> None:
    mesh = bpy.context.scene.dreamcad.mesh
    mesh.target_faces, mesh.texture_size, mesh.lods = FACES, "256", 0
    mesh.quads = mesh.keep_inner = False
    mesh.result_mode = "REPLACE"
    for key, value in values.items():
        setattr(mesh, key, value)


def triangles(obj) -> int:
    obj.data.calc_loop_triangles()
    return len(obj.data.loop_triangles)


def test_make_game_ready_replaces_the_mesh_in_place(connected) -> None:
    box = textured_box(subdivisions=3)
    before = bounds(evaluated_world_points(box))
    world = np.array(box.matrix_world)
    old_mesh = box.data.name
    game_ready_settings()
    assert bpy.ops.dreamcad.make_game_ready() == {"FINISHED"}

    assert box.name in bpy.data.objects and box.data.name != old_mesh
    assert old_mesh not in bpy.data.meshes  # no orphan left behind
    assert np.array(box.matrix_world) == pytest.approx(world)
    assert len(box.modifiers) == 0  # the subdivision is in the result: not applied twice
    assert bounds(world_points(box)) == pytest.approx(before, abs=2e-3)
    assert triangles(box) == pytest.approx(FACES, rel=0.05)
    nodes = box.active_material.node_tree.nodes
    assert any(n.type == "TEX_IMAGE" and n.image is not None for n in nodes)  # baked
    job_id = box["dreamcad_job_id"]
    record = connected.runtime.STATE.session.jobs[job_id]
    assert record.model == "mesh-optimize" and record.task == "optimize"
    settings = json.loads(box["dreamcad_settings"])
    assert settings["task"] == "optimize" and settings["target_faces"] == FACES
    assert settings["mesh"] == box.name and settings["lods"] == 0


def test_lods_beside_the_object_in_one_collection(connected) -> None:
    box = textured_box(subdivisions=3)
    before = bounds(evaluated_world_points(box))
    old_mesh, width = box.data, before[1, 0] - before[0, 0]
    game_ready_settings(lods=2, result_mode="BESIDE")
    assert bpy.ops.dreamcad.make_game_ready() == {"FINISHED"}

    assert box.data == old_mesh and len(box.modifiers) == 1  # the original is untouched
    lod0 = bpy.context.view_layer.objects.active
    assert lod0.name == f"{box.name} game-ready_LOD0"
    collection = bpy.data.collections[f"{box.name} game-ready LODs"]
    assert collection.name in bpy.data.collections["Dream CAD"].children
    levels = sorted(collection.objects, key=lambda o: o["dreamcad_lod"])
    assert [o.name for o in levels] == [f"{box.name} game-ready_LOD{i}" for i in range(3)]
    assert [o.hide_get() for o in levels] == [False, True, True]
    assert [o.hide_render for o in levels] == [False, True, True]
    faces = [triangles(o) for o in levels]
    assert faces[0] == pytest.approx(FACES, rel=0.05)
    assert faces[1] == pytest.approx(faces[0] / 2, rel=0.1)
    assert faces[2] == pytest.approx(faces[1] / 2, rel=0.1)
    shift = np.array([width * 1.25, 0.0, 0.0])
    for level in levels:
        assert np.array(level.matrix_world) == pytest.approx(np.array(lod0.matrix_world))
        assert bounds(world_points(level)) == pytest.approx(before + shift, abs=2e-2)
    assert bounds(world_points(lod0)) == pytest.approx(before + shift, abs=2e-3)


def test_reoptimize_a_result_keeps_its_place_and_replaces_its_levels(connected) -> None:
    box = textured_box(subdivisions=3)
    before = bounds(evaluated_world_points(box))
    game_ready_settings(lods=1)
    assert bpy.ops.dreamcad.make_game_ready() == {"FINISHED"}
    first_job = box["dreamcad_job_id"]
    assert len([o for o in bpy.data.objects if o.get("dreamcad_lod_of") == box.name]) == 1

    game_ready_settings(target_faces=500, lods=0)
    bpy.context.view_layer.objects.active = box
    assert bpy.ops.dreamcad.reoptimize() == {"FINISHED"}
    assert box["dreamcad_job_id"] != first_job
    record = connected.runtime.STATE.session.jobs[box["dreamcad_job_id"]]
    assert json.loads(box["dreamcad_settings"])["source_job"] == first_job
    assert record.task == "optimize"
    assert triangles(box) == pytest.approx(500, rel=0.05)  # the new budget, from the raw 768
    assert bounds(world_points(box)) == pytest.approx(before, abs=2e-3)
    assert not [o for o in bpy.data.objects if o.get("dreamcad_lod_of") == box.name]


def test_quads_come_back_as_quads(connected) -> None:
    bpy.ops.mesh.primitive_uv_sphere_add(segments=48, ring_count=24, location=(1.0, 2.0, 3.0))
    sphere = bpy.context.active_object
    before = bounds(evaluated_world_points(sphere))
    game_ready_settings(quads=True, target_faces=1000)
    assert bpy.ops.dreamcad.make_game_ready() == {"FINISHED"}
    sizes = np.array([len(p.vertices) for p in sphere.data.polygons])
    assert (sizes == 4).mean() > 0.9, np.bincount(sizes)
    assert "quad_pairs" not in sphere.data
    assert bounds(world_points(sphere)) == pytest.approx(before, abs=0.05)


def test_without_a_painter_texture_selected_says_what_to_install(connected) -> None:
    textured_box(subdivisions=0)
    bpy.context.scene.dreamcad.prompt = "rusty metal"
    with pytest.raises(RuntimeError, match="cannot paint meshes"):
        bpy.ops.dreamcad.texture_selected()
    assert connected.runtime.STATE.report.message.endswith("(task)")  # the field at fault
    assert connected.runtime.STATE.report.level == "ERROR"
    assert "hunyuan3d" in connected.runtime.STATE.report.hint


def test_buttons_need_a_mesh_or_a_dream_cad_object(fresh) -> None:
    assert not bpy.ops.dreamcad.make_game_ready.poll()
    assert not bpy.ops.dreamcad.texture_selected.poll()
    assert not bpy.ops.dreamcad.reoptimize.poll()
    bpy.ops.object.empty_add()
    assert not bpy.ops.dreamcad.make_game_ready.poll()
    textured_box(subdivisions=0)
    assert bpy.ops.dreamcad.make_game_ready.poll() and bpy.ops.dreamcad.texture_selected.poll()
    assert not bpy.ops.dreamcad.reoptimize.poll()


# Last in this file on purpose: after ed.undo/ed.redo in bpy-as-a-module, a later test's
# view_layer.objects iteration crashed Blender 5.0.1 once (segfault in importer.select_only).
def test_the_import_from_the_timer_is_one_undo_step(connected) -> None:
    box = textured_box(subdivisions=3)
    name, old_faces = box.name, len(box.data.polygons)
    game_ready_settings()
    bpy.ops.ed.undo_push(message="before optimizing")
    mesh_jobs = connected.operators.mesh_jobs
    exported = connected.mesh_export.export_object(box, bpy.context.evaluated_depsgraph_get())
    request = connected.mesh_requests.optimize_request(
        bpy.context.scene.dreamcad.mesh,
        mesh=connected.mesh_requests.mesh_input(exported, None), name=name)
    target = connected.mesh_results.target_for_export(exported, "REPLACE")
    plan = connected.runtime.SubmitPlan(connected.importer.Placement(), mesh_target=target)
    msg_id = connected.runtime.submit(request, plan)
    pump(connected, lambda: plan.done)
    assert plan.error is None, plan.error
    assert mesh_jobs.selected_meshes(bpy.context)  # the result object is selected
    new_faces = len(bpy.data.objects[name].data.polygons)
    assert new_faces != old_faces and msg_id

    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert len(bpy.data.objects[name].data.polygons) == old_faces
    assert len(bpy.data.objects[name].modifiers) == 1
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert len(bpy.data.objects[name].data.polygons) == new_faces
