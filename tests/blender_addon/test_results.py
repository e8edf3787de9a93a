"""results.py: a result imported by the timer is one undo step (real bpy, real backend).

Background Blender starts without an undo system; ``ed.undo_push`` sets it up, as the user's
last step would have in the UI, and ``ed.undo`` / ``ed.redo`` then work on the real memfile
undo. Redo is the telling half: without the add-on's own step the import could not come back.
"""

from __future__ import annotations

import bpy

from tests.blender_addon.conftest import pump
from tests.blender_addon.operators.test_generate import submit_from_panel


def test_import_from_the_timer_is_one_undo_step(connected) -> None:
    bpy.ops.ed.undo_push(message="before generating")
    msg_id = submit_from_panel(connected, "pink cone")
    plan = connected.runtime.STATE.plans[msg_id]
    pump(connected, lambda: plan.done)
    assert plan.error is None, plan.error
    name = plan.object_name
    assert name in bpy.data.objects

    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert name not in bpy.data.objects
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert bpy.data.objects[name]["dreamcad_job_id"] == plan.job_id
