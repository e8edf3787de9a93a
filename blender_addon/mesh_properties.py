"""The "Your mesh" settings: how Texture Selected, Make Game-Ready and Re-optimize run.

One PropertyGroup, reached as ``scene.dreamcad.mesh`` (a pointer in the panel's settings), so
the scene keeps a single home for UI state. The texture's prompt and image are the panel's own
Input fields; everything else a texture/optimize job needs is here. The painter list is the
connected backend's (``painter_items``): each painter keeps one enum number, a hash of its id, so
a saved choice still names the same model when the backend lists its models in another order.
"""

from __future__ import annotations

import zlib
from typing import Any

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

from . import live_state
from .mesh_requests import painters

AUTOMATIC_PAINTER = "AUTO"
_AUTOMATIC_ITEM = (AUTOMATIC_PAINTER, "Automatic",
                   "The panel's model if it paints meshes, else the first painter available", 0)
# Blender keeps only the strings of dynamic enum items that Python keeps alive.
_painter_items_cache: dict[tuple[tuple[str, str], ...], list[tuple[str, str, str, int]]] = {}


def painter_items(_settings: Any, _context: Any) -> list[tuple[str, str, str, int]]:
    """"Automatic" and each available model of the backend that paints meshes."""
    key = tuple((m.id, m.name) for m in painters(live_state.models()) if m.available)
    if key not in _painter_items_cache:
        _painter_items_cache[key] = [_AUTOMATIC_ITEM] + [
            (model_id, name, f"Paint with {name} ({model_id})",
             zlib.crc32(model_id.encode()) & 0x7FFFFFFF or 1)
            for model_id, name in key
        ]
    return _painter_items_cache[key]


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
    painter: EnumProperty(
        name="Painter", items=painter_items,
        description="The model that paints the texture (a prompt is first made into a picture "
        "by the text-to-image bridge)",
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
