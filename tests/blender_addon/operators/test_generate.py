"""operators/generate.py with runtime.py: real jobs on a real backend, imported into real bpy.

Foreground tests drive ``runtime.tick`` as Blender's timer would (pump), so they exercise the
same non-blocking path as the panel; background tests call the operators, which wait.
"""

from __future__ import annotations

import json

import bpy
import pytest

from shared_protocol.errors import ErrorCode
from tests.blender_addon.conftest import FAST, SLOW, pump, text_job


def dreamcad_objects() -> list:
    return [o for o in bpy.data.objects if "dreamcad_job_id" in o]


def submit_from_panel(addon, prompt: str, params=FAST) -> str:
    """What pressing Generate does in the UI (the operator's foreground path), minus waiting."""
    text_job(addon, prompt, params)
    settings = bpy.context.scene.dreamcad
    model = addon.live_state.model_info(settings.model_id)
    request = addon.properties.build_submit_request(settings, model)
    placement = addon.operators.generate.placement_for(bpy.context, "CURSOR", settings)
    return addon.runtime.submit(request, addon.runtime.SubmitPlan(placement))


def test_generate_waits_imports_and_tags_the_object(connected) -> None:
    text_job(connected, "red torus")
    bpy.context.scene.cursor.location = (2.0, -1.0, 0.5)
    settings = bpy.context.scene.dreamcad
    settings.use_target_size, settings.target_size = True, 0.75
    assert bpy.ops.dreamcad.generate() == {"FINISHED"}
    (obj,) = dreamcad_objects()
    assert obj.name == "Red torus"
    assert tuple(obj.location) == pytest.approx((2.0, -1.0, 0.5))
    assert max(obj.dimensions) == pytest.approx(0.75, rel=1e-4)
    assert [c.name for c in obj.users_collection] == ["Dream CAD"]
    material = obj.active_material
    assert any(n.type == "BSDF_PRINCIPLED" for n in material.node_tree.nodes)
    assert any(n.type == "TEX_IMAGE" and n.image is not None for n in material.node_tree.nodes)
    assert len(obj.data.uv_layers) >= 1 and len(obj.data.polygons) > 0
    session = connected.runtime.STATE.session
    assert obj["dreamcad_prompt"] == "red torus" and obj["dreamcad_model"] == "procedural"
    assert obj["dreamcad_job_id"] in session.jobs
    assert obj["dreamcad_backend_version"] == session.hello.backend_version
    stored = json.loads(obj["dreamcad_settings"])
    assert stored["parameters"] == FAST and stored["target_faces"] == 500
    assert int(obj["dreamcad_seed"]) == session.jobs[obj["dreamcad_job_id"]].seed


def test_progress_reaches_100_percent_through_the_timer(connected) -> None:
    msg_id = submit_from_panel(connected, "blue cube", {"resolution": 32, "steps": 8})
    plan = connected.runtime.STATE.plans[msg_id]
    seen: list[float] = []
    live = bpy.context.window_manager.dreamcad_live

    def record() -> None:
        rows = [r for r in live.jobs if plan.job_id and r.job_id == plan.job_id]
        if rows:
            seen.append(rows[0].percent)

    pump(connected, lambda: plan.done, on_tick=record)
    assert plan.error is None and plan.object_name in bpy.data.objects
    assert seen[-1] == 100.0
    assert any(0.0 < p < 100.0 for p in seen), seen  # a step was shown on the way
    assert seen == sorted(seen)  # never goes backwards
    (row,) = [r for r in live.jobs if r.job_id == plan.job_id]
    assert row.state == "succeeded" and row.imported


def test_cancel_a_running_job(connected) -> None:
    msg_id = submit_from_panel(connected, "green sphere", SLOW)
    plan = connected.runtime.STATE.plans[msg_id]
    runtime = connected.runtime
    pump(connected, lambda: (job := connected.live_state.active_job()) is not None and job.progress)
    assert bpy.ops.dreamcad.cancel() == {"FINISHED"}
    pump(connected, lambda: plan.done)
    assert plan.error is not None and plan.error.code == ErrorCode.CANCELLED.value
    assert runtime.STATE.session.jobs[plan.job_id].state == "cancelled"
    assert not dreamcad_objects()


def test_bad_input_is_refused_before_sending(connected) -> None:
    text_job(connected, "   ")
    with pytest.raises(RuntimeError, match="the prompt is empty"):
        bpy.ops.dreamcad.generate()
    text_job(connected, "cube", {"resolution": 100_000})
    with pytest.raises(RuntimeError, match="Resolution is 100000"):
        bpy.ops.dreamcad.generate()
    assert not connected.runtime.STATE.plans


def test_regenerate_with_a_new_seed_replaces_the_object(connected) -> None:
    text_job(connected, "yellow capsule")
    bpy.ops.dreamcad.generate()
    (old,) = dreamcad_objects()
    old_seed, old_job, old_location = int(old["dreamcad_seed"]), old["dreamcad_job_id"], \
        tuple(old.location)
    old_name = old.name
    assert bpy.ops.dreamcad.regenerate() == {"FINISHED"}
    (new,) = dreamcad_objects()  # the old one was replaced
    assert new["dreamcad_prompt"] == "yellow capsule" and new["dreamcad_job_id"] != old_job
    assert int(new["dreamcad_seed"]) != old_seed
    assert tuple(new.location) == pytest.approx(old_location)
    assert old_name == new.name or old_name not in bpy.data.objects
