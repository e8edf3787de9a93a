"""The "Your mesh" settings: how Texture Selected, Make Game-Ready and Re-optimize run.

One PropertyGroup, reached as ``scene.dreamcad.mesh`` (a pointer in the panel's settings), so
the scene keeps a single home for UI state. The texture's prompt and image are the panel's own
Input fields; everything else a texture/optimize job needs is here.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from shared_protocol.messages import (
    DEFAULT_FACES,
    DEFAULT_TEXTURE_SIZE,
    MAX_FACES,
    MAX_LODS,
    MIN_FACES,
    TEXTURE_SIZES,
)


class DREAMCAD_PG_mesh_settings(bpy.types.PropertyGroup):
    """Settings of the jobs that start from a mesh already in the scene."""

    result_mode: EnumProperty(
        name="Result",
        items=(("REPLACE", "Replace", "The result replaces the object's mesh and material"),
               ("BESIDE", "Beside", "The result is a new object next to the original")),
        default="REPLACE",
    )
    texture_input: EnumProperty(
        name="Texture From",
        items=(("PROMPT", "Prompt", "Paint what the panel's prompt describes"),
               ("IMAGE", "Image", "Paint from the panel's image")),
        default="PROMPT",
    )
    keep_uvs: BoolProperty(
        name="Keep My UVs", default=True,
        description="Paint into the mesh's own UV layout (a new one is made when it has none)",
    )
    target_faces: IntProperty(name="Faces", min=MIN_FACES, max=MAX_FACES, default=DEFAULT_FACES,
                              description="Face budget of the game-ready mesh (LOD0)")
    texture_size: EnumProperty(
        name="Texture", items=[(str(s), f"{s} px", "") for s in TEXTURE_SIZES],
        default=str(DEFAULT_TEXTURE_SIZE),
    )
    lods: IntProperty(name="LODs", min=0, max=MAX_LODS, default=0,
                      description="Coarser levels after LOD0, each about half the faces")
    quads: BoolProperty(name="Quads", default=False,
                        description="Remesh to quads near the face budget instead of triangles")
    keep_inner: BoolProperty(
        name="Keep Inner Surfaces", default=False,
        description="Keep faces no outside view can see (removed by default)",
    )


CLASSES = (DREAMCAD_PG_mesh_settings,)
