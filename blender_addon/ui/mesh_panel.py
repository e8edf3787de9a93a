"""The "Your Mesh" sidebar section: texture or optimize meshes already in the scene.

Draw code only. The buttons are the operators of operators/mesh_jobs.py; their poll disables a
button with its reason as the tooltip (no mesh selected, not a Dream CAD object), so the panel
itself needs no selection logic. Texturing reads the prompt and image of the Input section;
the painter list is the backend's models that paint meshes (mesh_properties.painter_items).
"""

from __future__ import annotations

import bpy

from .panels import DreamCadPanel


class DREAMCAD_PT_your_mesh(DreamCadPanel, bpy.types.Panel):
    bl_label = "Your Mesh"
    bl_parent_id = "DREAMCAD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        mesh = context.scene.dreamcad.mesh
        layout.prop(mesh, "result_mode", expand=True)

        box = layout.box()
        row = box.row(align=True)
        row.prop(mesh, "texture_input", expand=True)
        box.prop(mesh, "painter")
        box.prop(mesh, "keep_uvs")
        box.operator("dreamcad.texture_selected", icon="TEXTURE")

        box = layout.box()
        column = box.column(align=True)
        column.prop(mesh, "target_faces")
        column.prop(mesh, "texture_size")
        column.prop(mesh, "lods")
        row = box.row(align=True)
        row.prop(mesh, "quads", toggle=True)
        row.prop(mesh, "keep_inner", toggle=True)
        box.operator("dreamcad.make_game_ready", icon="MOD_DECIM")
        box.operator("dreamcad.reoptimize", icon="FILE_REFRESH")


CLASSES = (DREAMCAD_PT_your_mesh,)
