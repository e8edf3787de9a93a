"""Submit a generation: from the panel's settings, or again from an object with a new seed.

Thin operators: gather inputs, build the typed request, hand it to the runtime, report. In
background mode (batch scripts) they wait until the result is imported, because there is no
timer loop to finish the job later; a failure is then an ERROR report, which bpy.ops raises as
RuntimeError for the script to catch.
"""

from __future__ import annotations

import random

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import DEFAULT_FACES, DEFAULT_TEXTURE_SIZE, SubmitRequest

from .. import importer, live_state, runtime
from ..image_inputs import collect_images, images_from_sources
from ..properties import MAX_SEED, build_submit_request
from .reporting import report_error

DEFAULT_WAIT_S = 3600.0



class DREAMCAD_OT_generate(bpy.types.Operator):
    """Generate a 3D asset with the selected model and settings"""

    bl_idname = "dreamcad.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    wait: BoolProperty(
        name="Wait", options={"SKIP_SAVE"},
        description="Block until the result is imported (always on in background mode)",
    )
    timeout_s: FloatProperty(name="Timeout", default=DEFAULT_WAIT_S, options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.dreamcad
        waiting = self.wait or bpy.app.background
        try:
            session = (runtime.wait_until_connected(runtime.CONNECT_WAIT_S) if waiting
                       else runtime.require_session())
            images, sources = collect_images(settings)
            request = build_submit_request(
                settings, live_state.model_info(settings.model_id), images,
                max_prompt_chars=session.hello.max_prompt_chars if session.hello else None,
            )
            placement = placement_for(context, settings.placement, settings)
            msg_id = runtime.submit(request, runtime.SubmitPlan(placement, sources))
        except ProtocolError as error:
            return report_error(self, error)
        return finish(self, msg_id, waiting, self.timeout_s, request.name or request.model)


class DREAMCAD_OT_regenerate(bpy.types.Operator):
    """Generate the active Dream CAD object again with a new seed, in its place"""

    bl_idname = "dreamcad.regenerate"
    bl_label = "Regenerate (New Seed)"
    bl_options = {"REGISTER"}

    placement: EnumProperty(
        name="Place",
        items=(("REPLACE", "Replace", "The new result replaces the object"),
               ("ALIGN", "Align", "The new result is placed on the object, which stays")),
        default="REPLACE",
    )
    wait: BoolProperty(name="Wait", options={"SKIP_SAVE"})
    timeout_s: FloatProperty(name="Timeout", default=DEFAULT_WAIT_S, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        return obj is not None and importer.provenance_of(obj) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        provenance = importer.provenance_of(context.active_object)
        waiting = self.wait or bpy.app.background
        try:
            if waiting:
                runtime.wait_until_connected(runtime.CONNECT_WAIT_S)
            request = request_from_provenance(provenance)
            placement = placement_for(context, self.placement, context.scene.dreamcad)
            msg_id = runtime.submit(request, runtime.SubmitPlan(placement, provenance.inputs))
        except ProtocolError as error:
            return report_error(self, error)
        return finish(self, msg_id, waiting, self.timeout_s, request.name)


def request_from_provenance(provenance: importer.Provenance) -> SubmitRequest:
    """The request that made an object, with a new random seed."""
    settings = provenance.settings
    task = settings.get("task", "text")
    if live_state.model_info(provenance.model) is None:
        raise ProtocolError(ErrorCode.UNKNOWN_MODEL,
                            f"this backend has no model {provenance.model!r}", field="model")
    new_seed = random.randrange(MAX_SEED)
    if new_seed == provenance.seed:
        new_seed = (new_seed + 1) % MAX_SEED
    return SubmitRequest(
        model=provenance.model,
        task=task,
        prompt=provenance.prompt,
        images=images_from_sources(provenance.inputs) if task != "text" else (),
        seed=new_seed,
        target_faces=int(settings.get("target_faces", DEFAULT_FACES)),
        texture_size=int(settings.get("texture_size", DEFAULT_TEXTURE_SIZE)),
        pbr=bool(settings.get("pbr", True)),
        parameters=dict(settings.get("parameters", {})),
        name=provenance.prompt[:60],
    )


def placement_for(context: bpy.types.Context, mode: str, settings) -> importer.Placement:
    """Where the result goes, captured now: later ticks must not depend on the selection."""
    target = context.active_object.name if context.active_object else ""
    if mode != "CURSOR" and not target:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "no active object to align to or replace",
                            field="placement",
                            hint="Select an object, or place the result at the 3D cursor.")
    return importer.Placement(
        mode=mode,
        location=tuple(context.scene.cursor.location),
        target=target if mode != "CURSOR" else "",
        target_size=settings.target_size if settings.use_target_size else None,
    )


def finish(operator: bpy.types.Operator, msg_id: str, waiting: bool, timeout_s: float,
           label: str) -> set[str]:
    if not waiting:
        operator.report({"INFO"}, f"Dream CAD: submitted {label!r}")
        return {"FINISHED"}
    plan = runtime.wait_for(msg_id, timeout_s)
    if plan.error is not None:
        return report_error(operator, plan.error)
    operator.report({"INFO"}, f"Dream CAD: imported {plan.object_name}")
    return {"FINISHED"}


CLASSES = (DREAMCAD_OT_generate, DREAMCAD_OT_regenerate)
