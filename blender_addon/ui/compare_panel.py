"""The Compare section: tick models, press Compare, read the table, press Keep. Draw code only.

Every model is listed with a tick; one that cannot take the panel's input (another task, no
weights) is greyed with the reason. The table shows each compare of this .blend (newest first):
per model its state (or progress), time, faces and peak VRAM, and Keep once its result is in
the row. Everything comes from the session's job records and the row's objects, read each draw.
"""

from __future__ import annotations

import bpy

from .. import compare_jobs, compare_row, importer, live_state
from ..client.compare import Compare, CompareEntry, vram_text
from ..compare_properties import ticked
from .panels import _STATE_ICONS, DreamCadPanel


class DREAMCAD_PT_compare(DreamCadPanel, bpy.types.Panel):
    bl_label = "Compare"
    bl_parent_id = "DREAMCAD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.dreamcad
        models = live_state.models()
        if not models:
            layout.label(text="Connect to compare the backend's models", icon="INFO")
            return
        layout.label(text=f"Models for {settings.task.replace('_', ' ')} input:")
        column = layout.column(align=True)
        chosen = set(ticked(settings.compare))
        for model in models:
            ok, why = compare_jobs.eligible(model, settings.task)
            row = column.row(align=True)
            row.enabled = ok
            on = ok and model.id in chosen
            op = row.operator("dreamcad.compare_toggle_model", text=model.name,
                              icon="CHECKBOX_HLT" if on else "CHECKBOX_DEHLT")  # fmt: skip
            op.model_id = model.id
            if not ok:
                row.label(text=why)
        count = len(compare_jobs.chosen_models(settings, models))
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = count >= compare_jobs.MIN_MODELS
        text = (f"Compare {count} Models" if count >= compare_jobs.MIN_MODELS
                else f"Tick {compare_jobs.MIN_MODELS} or More Models")
        row.operator("dreamcad.compare", text=text, icon="SHADERFX")
        for compare in compare_jobs.this_file_compares(live_state.STATE.session):
            draw_table(layout.box(), compare)


def draw_table(box: bpy.types.UILayout, compare: Compare) -> None:
    """One compare: a header, then model | state | time | faces | VRAM | Keep per row."""
    box.label(text=f"“{compare.label}”", icon="SORTSIZE")
    header = box.row()
    for title in ("Model", "State", "Time", "Faces", "VRAM", ""):
        header.label(text=title)
    landed = {o.get(f"{importer.PROPERTY_PREFIX}job_id"): o
              for o in compare_row.row_objects(compare.compare_id)}  # fmt: skip
    for entry in compare.entries:
        draw_entry(box.row(), entry, landed.get(entry.job.job_id))


def draw_entry(row: bpy.types.UILayout, entry: CompareEntry, obj) -> None:
    job = entry.job
    row.label(text=entry.key.model, icon=_STATE_ICONS.get(job.state, "QUESTION"))
    row.label(text=f"{job.percent:.0f} %" if job.state == "running" else job.state)
    row.label(text=f"{entry.seconds:.1f} s" if entry.seconds is not None else "-")
    row.label(text=f"{entry.faces:,}" if entry.faces is not None else "-")
    row.label(text=vram_text(entry.peak_vram_mb) if job.manifest else "-")
    if obj is not None:
        row.operator("dreamcad.compare_keep", text="Keep", icon="CHECKMARK").object_name = obj.name
    else:
        row.label(text="")


CLASSES = (DREAMCAD_PT_compare,)
