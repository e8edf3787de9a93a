"""Mesh objects the add-on's texture/optimize tests start from, built with real bpy.

``textured_box`` is what an artist's asset looks like to the exporter: a box moved, turned and
scaled off the origin, a Subdivision modifier (so "modifiers applied" is visible in the face
count), a material whose Base Color reads an image texture, and a colour attribute.
"""

from __future__ import annotations

import bpy
import numpy as np

BOX_LOCATION = (3.0, -1.0, 2.0)
BOX_ROTATION = (0.0, 0.0, 0.5)
BOX_SCALE = (2.0, 1.0, 0.5)
TEXTURE_PX = 16


def textured_box(name: str = "Crate", subdivisions: int = 1) -> bpy.types.Object:
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=BOX_LOCATION, rotation=BOX_ROTATION)
    obj = bpy.context.active_object
    obj.name = name
    obj.scale = BOX_SCALE
    if subdivisions:
        modifier = obj.modifiers.new("Subdivision", "SUBSURF")
        modifier.levels = subdivisions
        modifier.subdivision_type = "SIMPLE"  # keeps the box's shape: bounds stay exact
    obj.data.materials.append(image_material(f"{name} paint"))
    colours = obj.data.color_attributes.new("Col", "BYTE_COLOR", "CORNER")
    values = np.tile([0.9, 0.2, 0.1, 1.0], len(obj.data.loops)).astype(np.float32)
    colours.data.foreach_set("color", values)
    bpy.context.view_layer.update()
    return obj


def image_material(name: str) -> bpy.types.Material:
    """A Principled BSDF whose Base Color is an image texture (a checker, packed)."""
    image = bpy.data.images.new(f"{name} image", TEXTURE_PX, TEXTURE_PX)
    pixels = np.zeros((TEXTURE_PX, TEXTURE_PX, 4), dtype=np.float32)
    pixels[..., 3] = 1.0
    checker = (np.add.outer(np.arange(TEXTURE_PX), np.arange(TEXTURE_PX)) // 4) % 2 == 0
    pixels[checker, 0] = 1.0
    pixels[~checker, 2] = 1.0
    image.pixels.foreach_set(pixels.ravel())
    image.pack()
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender 4.x; 5.x materials always have nodes
        material.use_nodes = True
    nodes = material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    material.node_tree.links.new(texture.outputs["Color"], bsdf.inputs["Base Color"])
    return material


def world_points(obj: bpy.types.Object) -> np.ndarray:
    """(n, 3) vertex positions of ``obj``'s own mesh in world space."""
    coords = np.empty(len(obj.data.vertices) * 3, dtype=np.float64)
    obj.data.vertices.foreach_get("co", coords)
    local = np.c_[coords.reshape(-1, 3), np.ones(len(obj.data.vertices))]
    return (local @ np.array(obj.matrix_world).T)[:, :3]


def evaluated_world_points(obj: bpy.types.Object) -> np.ndarray:
    """(n, 3) positions of ``obj`` with its modifiers applied, in world space."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        coords = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", coords)
    finally:
        evaluated.to_mesh_clear()
    local = np.c_[coords.reshape(-1, 3), np.ones(len(coords) // 3)]
    return (local @ np.array(obj.matrix_world).T)[:, :3]
