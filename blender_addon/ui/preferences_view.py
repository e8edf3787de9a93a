"""Draw code for the add-on's preferences: connection, local backend (with its log), output."""

from __future__ import annotations

import bpy

from .. import live_state


def draw_preferences(prefs, layout: bpy.types.UILayout, _context: bpy.types.Context) -> None:
    layout.prop(prefs, "backend_address")
    layout.prop(prefs, "reply_timeout_s")
    layout.prop(prefs, "use_curve")
    if prefs.use_curve:
        column = layout.column(align=True)
        column.prop(prefs, "curve_server_public")
        column.prop(prefs, "curve_client_public")
        column.prop(prefs, "curve_client_secret")
    box = layout.box()
    box.label(text="Local Backend", icon="CONSOLE")
    box.prop(prefs, "backend_python")
    box.prop(prefs, "backend_data_dir")
    box.prop(prefs, "start_backend_on_enable")
    row = box.row(align=True)
    row.operator("dreamcad.start_local_backend", icon="PLAY")
    row.operator("dreamcad.stop_local_backend", icon="CANCEL")
    local = live_state.STATE.local_backend
    if local is not None:
        box.label(text=f"Log: {local.log_path}")
        log_box = box.box()
        column = log_box.column(align=True)
        column.scale_y = 0.7
        for line in live_state.STATE.log_lines:
            column.label(text=line[:160])
    layout.prop(prefs, "output_directory")
    layout.prop(prefs, "import_gaussians")
