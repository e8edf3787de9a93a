"""The Dream CAD sidebar (3D Viewport > N > Dream CAD): draw code only, no I/O.

Panels read the scene's settings and the live state (live_state.py) and draw them; every
action is an operator. Model parameters are drawn from the collection built from the model's
ParameterSchema, so no model has its own UI code.
"""

from __future__ import annotations

import bpy

from shared_protocol.messages import GENERATE_TASKS

from .. import importer, live_state
from ..client.records import ConnectionState
from .status_text import gpu_line, progress_line, wrap

_STATE_ICONS = {"queued": "SORTTIME", "running": "PLAY", "succeeded": "CHECKMARK",
                "failed": "ERROR", "cancelled": "CANCEL"}


def draw_wrapped(layout: bpy.types.UILayout, text: str, icon: str = "NONE") -> None:
    column = layout.column(align=True)
    for index, line in enumerate(wrap(text)):
        column.label(text=line, icon=icon if index == 0 else "BLANK1")


class DreamCadPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dream CAD"


class DREAMCAD_PT_main(DreamCadPanel, bpy.types.Panel):
    bl_label = "Dream CAD"
    bl_idname = "DREAMCAD_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        session = live_state.STATE.session
        box = layout.box()
        if session is not None and session.state is ConnectionState.CONNECTED and session.hello:
            hello = session.hello
            box.label(text=f"Backend {hello.backend_version} · protocol "
                      f"{hello.protocol_version}", icon="LINKED")
            box.label(text=gpu_line(hello.gpus), icon="MEMORY")
        elif session is not None and session.state is ConnectionState.CONNECTING:
            box.label(text=f"Connecting to {session.address}...", icon="TIME")
        else:
            error = session.error if session else None
            draw_wrapped(box, error.message if error else "Not connected", icon="UNLINKED")
            if error and error.hint:
                draw_wrapped(box, error.hint, icon="INFO")
            row = box.row(align=True)
            row.operator("dreamcad.connect", icon="FILE_REFRESH")
            row.operator("dreamcad.start_local_backend", text="Start Local", icon="PLAY")
        local = live_state.STATE.local_backend
        if local is not None:
            row = box.row()
            state = "running" if local.running else f"exited ({local.exit_code})"
            row.label(text=f"Local backend {state}", icon="CONSOLE")
            row.operator("dreamcad.stop_local_backend", text="", icon="CANCEL")
        report = live_state.STATE.report
        if report is not None and report.level != "INFO":
            draw_wrapped(layout, report.message, icon="ERROR")
            if report.hint:
                draw_wrapped(layout, report.hint, icon="INFO")


class DREAMCAD_PT_model(DreamCadPanel, bpy.types.Panel):
    bl_label = "Model"
    bl_parent_id = "DREAMCAD_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.dreamcad
        models = live_state.models()
        if not models:
            layout.label(text="Connect to list the backend's models", icon="INFO")
            return
        column = layout.column(align=True)
        for model in models:
            if not any(task in GENERATE_TASKS for task in model.tasks):
                continue  # e.g. mesh-optimize: it works on the artist's meshes, not from inputs
            row = column.row(align=True)
            row.enabled = model.available
            op = row.operator("dreamcad.select_model", text=model.name,
                              depress=model.id == settings.model_id,
                              icon="CHECKBOX_HLT" if model.id == settings.model_id
                              else "CHECKBOX_DEHLT")
            op.model_id = model.id
            if not model.available:
                draw_wrapped(column, model.unavailable_reason or "unavailable", icon="ERROR")
        selected = live_state.model_info(settings.model_id)
        if selected is not None:
            layout.label(text=f"Licence: {selected.license}", icon="COPYRIGHT")
            if selected.description:
                draw_wrapped(layout, selected.description)
            layout.label(text=f"Needs about {selected.vram_mb / 1024:.1f} GB of GPU memory")


class DREAMCAD_PT_input(DreamCadPanel, bpy.types.Panel):
    bl_label = "Input"
    bl_parent_id = "DREAMCAD_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.dreamcad
        model = live_state.model_info(settings.model_id)
        # Mesh tasks (texture, optimize) are not inputs of a new asset: they have their own UI.
        tasks = [t for t in (model.tasks if model else GENERATE_TASKS) if t in GENERATE_TASKS]
        row = layout.row(align=True)
        for task in tasks:
            row.prop_enum(settings, "task", task)
        layout.prop(settings, "prompt", text="", icon="TEXT")
        if settings.task == "text":
            return
        layout.prop(settings, "image_source", expand=True)
        multi_view = settings.task == "multi_image" and "multi_image" in tasks
        if settings.image_source == "FILE":
            layout.prop(settings, "image_path", text="Front" if multi_view else "Image")
        else:
            layout.template_ID(settings, "image", open="image.open")
        if multi_view:
            column = layout.column(align=True)  # extra views only for models that take them
            for prop in ("view_left_path", "view_back_path", "view_right_path"):
                column.prop(settings, prop)


class DREAMCAD_PT_settings(DreamCadPanel, bpy.types.Panel):
    bl_label = "Settings"
    bl_parent_id = "DREAMCAD_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.dreamcad
        layout.prop(settings, "quality")
        column = layout.column(align=True)
        column.prop(settings, "target_faces")
        column.prop(settings, "texture_size")
        layout.prop(settings, "pbr")
        row = layout.row(align=True)
        row.prop(settings, "randomize_seed", text="", icon="FILE_REFRESH")
        sub = row.row(align=True)
        sub.enabled = not settings.randomize_seed
        sub.prop(settings, "seed")
        if len(settings.parameters):
            box = layout.box()
            box.label(text="Model Parameters")
            for item in settings.parameters:
                draw_parameter(box, item)
        row = layout.row(align=True)
        row.prop(settings, "preset_name", text="")
        row.operator("dreamcad.preset_save", text="", icon="ADD")
        row.operator("dreamcad.preset_load", text="", icon="PRESET")
        row.operator("dreamcad.preset_delete", text="", icon="REMOVE")


def draw_parameter(layout: bpy.types.UILayout, item) -> None:
    """One parameter's widget, chosen by its kind alone."""
    field = {"int": "int_value", "float": "float_value", "bool": "bool_value",
             "choice": "choice_value"}.get(item.kind, "str_value")
    layout.prop(item, field, text=item.label)


class DREAMCAD_PT_output(DreamCadPanel, bpy.types.Panel):
    bl_label = "Placement"
    bl_parent_id = "DREAMCAD_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.dreamcad
        layout.prop(settings, "placement")
        row = layout.row(align=True)
        row.prop(settings, "use_target_size", text="")
        sub = row.row(align=True)
        sub.enabled = settings.use_target_size
        sub.prop(settings, "target_size")


class DREAMCAD_PT_generate(DreamCadPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "DREAMCAD_PT_main"
    bl_options = {"HIDE_HEADER"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row()
        row.scale_y = 1.6
        row.enabled = bool(live_state.models())
        row.operator("dreamcad.generate", icon="SHADERFX")
        job = live_state.active_job()
        if job is not None:
            row = layout.row(align=True)
            row.progress(factor=job.percent / 100.0, type="BAR",
                         text=progress_line(job.progress, job.state))
            row.operator("dreamcad.cancel", text="", icon="CANCEL").job_id = job.job_id
        obj = context.active_object
        if obj is not None and importer.provenance_of(obj) is not None:
            layout.operator("dreamcad.regenerate", icon="FILE_REFRESH")


CLASSES = (
    DREAMCAD_PT_main,
    DREAMCAD_PT_model,
    DREAMCAD_PT_input,
    DREAMCAD_PT_settings,
    DREAMCAD_PT_output,
    DREAMCAD_PT_generate,
)
