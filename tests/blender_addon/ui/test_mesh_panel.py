"""ui/mesh_panel.py: the "Your Mesh" section draws every setting and the three buttons.

Drawn against a RecordingLayout (checks names against Blender's RNA); which buttons are usable
is the operators' poll, checked in operators/test_mesh_jobs.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import bpy

from tests.blender_addon.ui.recording_layout import RecordingLayout


def test_your_mesh_section_has_the_settings_and_the_three_buttons(fresh) -> None:
    layout = RecordingLayout()
    panel = fresh.ui.mesh_panel.DREAMCAD_PT_your_mesh
    assert panel in fresh.ui.CLASSES and panel.bl_parent_id == "DREAMCAD_PT_main"
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    drawn = {c.name for c in layout.calls if c.kind == "prop"}
    assert drawn == {"result_mode", "texture_input", "painter", "keep_uvs", "target_faces",
                     "texture_size", "lods", "quads", "keep_inner"}
    buttons = [c.name for c in layout.calls if c.kind == "operator"]
    assert buttons == ["dreamcad.texture_selected", "dreamcad.make_game_ready",
                       "dreamcad.reoptimize"]
    assert bpy.context.scene.dreamcad.mesh.result_mode == "REPLACE"
