"""Compare: tick models, send one input to all of them at once, keep the best result.

Thin operators. ``dreamcad.compare`` builds one request per ticked model (compare_jobs.py), notes
the row's start (the 3D cursor) in the .blend and submits them all; results land side by side
as they arrive (compare_row.py). In background mode it waits for every job, and fails only when
none succeeded. ``dreamcad.compare_keep`` keeps one result and clears the row: one undo step.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from shared_protocol.errors import ErrorCode, ProtocolError

from .. import compare_jobs, compare_row, importer, live_state, runtime
from ..client.compare import new_compare_id
from ..client.records import describe_error
from ..compare_properties import toggle
from ..image_inputs import collect_images
from .generate import DEFAULT_WAIT_S
from .reporting import report_error


class DREAMCAD_OT_compare_toggle_model(bpy.types.Operator):
    """Tick or untick this model for Compare"""

    bl_idname = "dreamcad.compare_toggle_model"
    bl_label = "Compare This Model"
    bl_options = {"INTERNAL"}

    model_id: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        toggle(context.scene.dreamcad.compare, self.model_id)
        return {"FINISHED"}


class DREAMCAD_OT_compare(bpy.types.Operator):
    """Send the panel's input to every ticked model at once; results land side by side"""

    bl_idname = "dreamcad.compare"
    bl_label = "Compare"
    bl_options = {"REGISTER", "UNDO"}

    wait: BoolProperty(
        name="Wait", options={"SKIP_SAVE"},
        description="Block until every result is in (always on in background mode)",
    )
    timeout_s: FloatProperty(name="Timeout", default=DEFAULT_WAIT_S, options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        waiting = self.wait or bpy.app.background
        try:
            if waiting:
                runtime.wait_until_connected(runtime.CONNECT_WAIT_S)
            _compare_id, msg_ids, names = send_compare(context)
        except ProtocolError as error:
            return report_error(self, error)
        if not waiting:
            self.report({"INFO"}, f"Dream CAD: comparing {', '.join(names)}")
            return {"FINISHED"}
        return self._wait(msg_ids, ", ".join(names))

    def _wait(self, msg_ids: list[str], names: str) -> set[str]:
        plans = [runtime.wait_for(msg_id, self.timeout_s) for msg_id in msg_ids]
        failed = [p for p in plans if p.error is not None]
        if len(failed) == len(plans):
            return report_error(self, failed[0].error)
        for plan in failed:
            message, hint = describe_error(plan.error)
            self.report({"WARNING"}, f"Dream CAD: one compare job failed: {message} {hint}")
        self.report({"INFO"}, f"Dream CAD: compared {names}")
        return {"FINISHED"}


def send_compare(context: bpy.types.Context) -> tuple[str, list[str], list[str]]:
    """Submit the panel's input to every ticked model: (compare id, submit msg ids, models).

    The row's start (the 3D cursor) is noted in the .blend before anything is sent, so a result
    that arrives at once, or after a restart, knows where it goes.
    """
    settings = context.scene.dreamcad
    session = runtime.require_session()
    compare_id = new_compare_id()
    images, sources = collect_images(settings)
    models = compare_jobs.chosen_models(settings, live_state.models())
    requests = compare_jobs.compare_requests(
        settings, models, images, compare_id,
        max_prompt_chars=session.hello.max_prompt_chars if session.hello else None,
    )
    origin = tuple(context.scene.cursor.location)
    compare_row.start_row(compare_id, origin)
    placement = importer.Placement(
        location=origin, target_size=settings.target_size if settings.use_target_size else None
    )
    msg_ids = [runtime.submit(r, runtime.SubmitPlan(placement, dict(sources))) for r in requests]
    return compare_id, msg_ids, [m.id for m in models]


class DREAMCAD_OT_compare_keep(bpy.types.Operator):
    """Keep this result: it moves into the Dream CAD collection, the rest of the row goes"""

    bl_idname = "dreamcad.compare_keep"
    bl_label = "Keep"
    bl_options = {"REGISTER", "UNDO"}

    object_name: StringProperty(
        name="Object", options={"SKIP_SAVE"},
        description="The compare result to keep (default: the active object)",
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = (bpy.data.objects.get(self.object_name) if self.object_name
               else context.active_object)
        if obj is None or compare_row.ID_PROPERTY not in obj:
            return report_error(self, ProtocolError(
                ErrorCode.MISSING_FIELD, "no compare result to keep", field="object",
                hint="Press Keep beside a result in the Compare table, or select one.",
            ))  # fmt: skip
        kept = compare_row.keep(obj)
        self.report({"INFO"}, f"Dream CAD: kept {kept.name}")
        return {"FINISHED"}


CLASSES = (DREAMCAD_OT_compare_toggle_model, DREAMCAD_OT_compare, DREAMCAD_OT_compare_keep)
