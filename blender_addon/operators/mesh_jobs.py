"""Jobs on meshes already in the scene: Texture Selected, Make Game-Ready, Re-optimize.

Thin operators: export each selected mesh object (mesh_export.py), build the typed request
(mesh_requests.py), hand it to the runtime with a plan that sends the result back onto the same
object (mesh_results.py), report. One job per object, so each result knows its object. The
result is imported by the timer as one undo step (results.py), like a generated asset; in
background mode the operators wait for every job, as Generate does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import HelloReply, ImageInput, MeshInput, SubmitRequest

from .. import importer, live_state, mesh_export, mesh_requests, mesh_results, properties, runtime
from ..image_inputs import blend_image_png, file_image
from ..mesh_properties import AUTOMATIC_PAINTER
from .generate import DEFAULT_WAIT_S, finish
from .reporting import report_error

_RESULT_ITEMS = (
    ("SETTINGS", "As Set", "Replace or place beside, as the panel says"),
    ("REPLACE", "Replace", "The result replaces the object's mesh and material"),
    ("BESIDE", "Beside", "The result is a new object next to the original"),
)


# (context, exported object, its GLB as the request's mesh, the backend's hello) -> request
JobBuilder = Callable[[bpy.types.Context, mesh_export.ExportedMesh, MeshInput, HelloReply | None],
                      tuple[SubmitRequest, dict[str, str]]]


def selected_meshes(context: bpy.types.Context) -> list[bpy.types.Object]:
    return [obj for obj in context.selected_objects if obj.type == "MESH"]


def texture_job(context: bpy.types.Context, exported: mesh_export.ExportedMesh,
                mesh: MeshInput, hello: HelloReply | None) -> tuple[SubmitRequest, dict[str, str]]:
    """(request, input sources) of painting ``exported`` from the panel's prompt or image."""
    settings = context.scene.dreamcad
    by_prompt = settings.mesh.texture_input == "PROMPT"
    # "" when the chosen painter is gone from the list (another backend): as Automatic
    chosen_only = settings.mesh.painter not in ("", AUTOMATIC_PAINTER)
    preferred = settings.mesh.painter if chosen_only else settings.model_id
    model, parameters = mesh_requests.texture_model(
        live_state.models(), preferred, by_prompt, panel_parameters(settings, preferred),
        chosen_only=chosen_only)
    images, inputs = ((), {}) if by_prompt else texture_images(settings)
    request = mesh_requests.texture_request(
        model, exported, mesh, prompt=settings.prompt, images=images, parameters=parameters,
        texture_size=int(settings.mesh.texture_size), keep_uvs=settings.mesh.keep_uvs,
        max_prompt_chars=hello.max_prompt_chars if hello else None,
    )
    return request, inputs


def game_ready_job(context: bpy.types.Context, exported: mesh_export.ExportedMesh,
                   mesh: MeshInput, hello: HelloReply | None
                   ) -> tuple[SubmitRequest, dict[str, str]]:
    """(request, input sources) of making ``exported`` game-ready with the panel's settings."""
    mesh_requests.optimize_model(live_state.models())
    request = mesh_requests.optimize_request(context.scene.dreamcad.mesh, mesh=mesh,
                                             name=exported.object_name)
    return request, {}


def submit_mesh_job(build: JobBuilder, context: bpy.types.Context, obj: bpy.types.Object,
                    mode: str) -> str:
    """Export ``obj``, build its request with ``build`` and submit it -> the submit msg_id.

    The result is imported onto ``obj`` (or beside it, ``mode``) when it arrives, by the timer
    or by ``runtime.wait_for``."""
    session = runtime.require_session()
    hello = session.hello
    exported = mesh_export.export_object(obj, context.evaluated_depsgraph_get())
    mesh = mesh_requests.mesh_input(exported, hello.max_frame_bytes if hello else None)
    request, inputs = build(context, exported, mesh, hello)
    target = mesh_results.target_for_export(exported, mode)
    return runtime.submit(request, runtime.SubmitPlan(importer.Placement(), inputs,
                                                      mesh_target=target))


def panel_parameters(settings, model_id: str) -> dict[str, Any]:
    """The painter's parameters as the panel has them, when the panel's model is the painter
    (its parameter fields show that model's); {} (the painter's defaults) otherwise."""
    model = live_state.model_info(model_id)
    if model is None or model_id != settings.model_id:
        return {}
    return properties.checked_parameters(settings, model)


class _MeshJobOperator:
    """What the two "selected meshes" operators share: poll, export, submit, wait."""

    bl_options = {"REGISTER"}
    # Each operator's JobBuilder, as a staticmethod (not an annotation: Blender would take an
    # annotation for an operator property).

    result: EnumProperty(name="Result", items=_RESULT_ITEMS, default="SETTINGS",
                         options={"SKIP_SAVE"})
    wait: BoolProperty(name="Wait", options={"SKIP_SAVE"},
                       description="Block until the results are in (always on in background)")
    timeout_s: FloatProperty(name="Timeout", default=DEFAULT_WAIT_S, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode first")
            return False
        if not selected_meshes(context):
            cls.poll_message_set("Select one or more mesh objects")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.dreamcad
        mode = settings.mesh.result_mode if self.result == "SETTINGS" else self.result
        waiting = self.wait or bpy.app.background
        msg_ids = []
        try:
            if waiting:
                runtime.wait_until_connected(runtime.CONNECT_WAIT_S)
            for obj in selected_meshes(context):
                msg_ids.append((submit_mesh_job(type(self).build, context, obj, mode), obj.name))
        except ProtocolError as error:
            return report_error(self, error)
        results = [finish(self, msg_id, waiting, self.timeout_s, name) for msg_id, name in msg_ids]
        return {"CANCELLED"} if {"CANCELLED"} in results else {"FINISHED"}


class DREAMCAD_OT_texture_selected(_MeshJobOperator, bpy.types.Operator):
    """Paint a new texture on the selected meshes from the panel's prompt or image, keeping
    their geometry"""

    bl_idname = "dreamcad.texture_selected"
    bl_label = "Texture Selected"
    build = staticmethod(texture_job)


class DREAMCAD_OT_make_game_ready(_MeshJobOperator, bpy.types.Operator):
    """Make the selected meshes game-ready: clean, hidden inner surfaces removed, reduced to the
    face budget (or quads), unwrapped, their own materials baked, optional LODs"""

    bl_idname = "dreamcad.make_game_ready"
    bl_label = "Make Game-Ready"
    build = staticmethod(game_ready_job)


class DREAMCAD_OT_reoptimize(bpy.types.Operator):
    """Optimize this Dream CAD object again from its job's kept raw output, with the "Your
    mesh" settings (no model run)"""

    bl_idname = "dreamcad.reoptimize"
    bl_label = "Re-optimize"
    bl_options = {"REGISTER"}

    result: EnumProperty(name="Result", items=_RESULT_ITEMS, default="SETTINGS",
                         options={"SKIP_SAVE"})
    wait: BoolProperty(name="Wait", options={"SKIP_SAVE"})
    timeout_s: FloatProperty(name="Timeout", default=DEFAULT_WAIT_S, options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = context.active_object
        if obj is None or importer.provenance_of(obj) is None:
            cls.poll_message_set("Make an object with Dream CAD first (its job id is needed)")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object
        provenance = importer.provenance_of(obj)
        settings = context.scene.dreamcad
        mode = settings.mesh.result_mode if self.result == "SETTINGS" else self.result
        waiting = self.wait or bpy.app.background
        try:
            if waiting:
                runtime.wait_until_connected(runtime.CONNECT_WAIT_S)
            mesh_requests.optimize_model(live_state.models())
            request = mesh_requests.optimize_request(settings.mesh, source_job=provenance.job_id,
                                                     name=obj.name)
            plan = runtime.SubmitPlan(importer.Placement(), dict(provenance.inputs),
                                      mesh_target=mesh_results.target_for_reoptimize(obj, mode))
            msg_id = runtime.submit(request, plan)
        except ProtocolError as error:
            return report_error(self, error)
        return finish(self, msg_id, waiting, self.timeout_s, obj.name)


def texture_images(settings) -> tuple[tuple[ImageInput, ...], dict[str, str]]:
    """The panel's image (file or one in the .blend) for a texture job, and where it came from."""
    if settings.image_source == "BLEND":
        if settings.image is None:
            raise ProtocolError(ErrorCode.MISSING_FIELD, "no image chosen from this file",
                                field="image", hint="Pick an image in the Image field.")
        return ((ImageInput(data=blend_image_png(settings.image)),),
                {"image_name": settings.image.name})
    return ((file_image(settings.image_path, "front"),),
            {"image": bpy.path.abspath(settings.image_path)})


CLASSES = (DREAMCAD_OT_texture_selected, DREAMCAD_OT_make_game_ready, DREAMCAD_OT_reoptimize)
