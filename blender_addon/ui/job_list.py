"""The job queue: a UIList of jobs with status and thumbnails, and the panel around it.

Rows are display copies the runtime refreshes (properties.DREAMCAD_PG_job_row); the buttons
under the list act on the active row through operators.
"""

from __future__ import annotations

import bpy

from .. import live_state
from .panels import _STATE_ICONS, DreamCadPanel, draw_wrapped


class DREAMCAD_UL_jobs(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop,
                  _index=0, _flt_flag=0) -> None:
        row = layout.row(align=True)
        if item.preview_icon:
            row.label(text=item.label, icon_value=item.preview_icon)
        else:
            row.label(text=item.label, icon=_STATE_ICONS.get(item.state, "QUESTION"))
        if item.state == "running":
            row.label(text=f"{item.percent:.0f} %")
        elif item.state == "succeeded" and not item.imported:
            row.label(text="", icon="IMPORT")
        else:
            row.label(text=item.state)


class DREAMCAD_PT_queue(DreamCadPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_parent_id = "DREAMCAD_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        live = context.window_manager.dreamcad_live
        if live_state.STATE.offered:
            layout.label(text=f"{len(live_state.STATE.offered)} results not in this file",
                         icon="IMPORT")
        layout.template_list("DREAMCAD_UL_jobs", "", live, "jobs", live, "active_job_index",
                             rows=3)
        if not 0 <= live.active_job_index < len(live.jobs):
            return
        row_data = live.jobs[live.active_job_index]
        if row_data.preview_icon:
            layout.template_icon(icon_value=row_data.preview_icon, scale=6.0)
        if row_data.detail:
            draw_wrapped(layout, row_data.detail)
        row = layout.row(align=True)
        if row_data.state == "succeeded":
            row.operator("dreamcad.reimport", icon="IMPORT").job_id = row_data.job_id
        elif row_data.state in ("queued", "running"):
            row.operator("dreamcad.cancel", icon="CANCEL").job_id = row_data.job_id
        row.operator("dreamcad.delete", text="", icon="TRASH").job_id = row_data.job_id


CLASSES = (DREAMCAD_UL_jobs, DREAMCAD_PT_queue)
