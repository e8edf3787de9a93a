"""lod_levels.py: a generated asset with a LOD chain from a real backend imports as a LOD set.

The GLB is the backend's own (procedural model, geometry pipeline with ``lods``), imported by
the same timer path as any generated result: LOD0 placed and tagged, the coarser levels in the
same collection, hidden, on LOD0's transform; a REPLACE of LOD0 removes the whole set.
"""

from __future__ import annotations

import dataclasses

import bpy
import pytest

from tests.blender_addon.conftest import pump, text_job


def generate_with_lods(addon, prompt: str, lods: int) -> str:
    text_job(addon, prompt)
    settings = bpy.context.scene.dreamcad
    settings.target_faces = 2000
    request = addon.properties.build_submit_request(
        settings, addon.live_state.model_info(settings.model_id))
    request = dataclasses.replace(request, lods=lods)
    bpy.context.scene.cursor.location = (1.0, -2.0, 0.5)
    placement = addon.operators.generate.placement_for(bpy.context, "CURSOR", settings)
    plan = addon.runtime.SubmitPlan(placement)
    msg_id = addon.runtime.submit(request, plan)
    pump(addon, lambda: plan.done)
    assert plan.error is None, plan.error
    assert msg_id
    return plan.object_name


def test_generated_lod_chain_is_one_collection_with_lod0_visible(connected) -> None:
    name = generate_with_lods(connected, "green ring", lods=2)
    lod0 = bpy.data.objects[name]
    assert name == "Green ring_LOD0" and lod0["dreamcad_job_id"]
    collection = bpy.data.collections["Green ring LODs"]
    assert collection.name in bpy.data.collections["Dream CAD"].children
    levels = sorted(collection.objects, key=lambda o: o["dreamcad_lod"])
    assert [o.name for o in levels] == [f"Green ring_LOD{i}" for i in range(3)]
    assert [o.hide_get() for o in levels] == [False, True, True]
    assert [o.hide_render for o in levels] == [False, True, True]
    assert tuple(lod0.location) == pytest.approx((1.0, -2.0, 0.5))
    manifest = connected.runtime.STATE.session.jobs[lod0["dreamcad_job_id"]].manifest
    assert [len(o.data.polygons) for o in levels] == [lod.faces for lod in manifest.lods]
    for level in levels[1:]:
        assert level.matrix_world == lod0.matrix_world
        assert level.get("dreamcad_lod_of") == lod0.name and "dreamcad_job_id" not in level


def test_replacing_lod0_removes_its_levels(connected) -> None:
    name = generate_with_lods(connected, "blue ring", lods=1)
    bpy.context.view_layer.objects.active = bpy.data.objects[name]
    placement = connected.importer.Placement(mode="REPLACE", target=name)
    text_job(connected, "red cube")
    settings = bpy.context.scene.dreamcad
    request = connected.properties.build_submit_request(
        settings, connected.live_state.model_info(settings.model_id))
    plan = connected.runtime.SubmitPlan(placement)
    connected.runtime.submit(request, plan)
    pump(connected, lambda: plan.done)
    assert plan.error is None, plan.error
    assert name not in bpy.data.objects and "Blue ring_LOD1" not in bpy.data.objects
