"""A result GLB -> one mesh object per level of detail, and the LOD set laid out in the scene.

The backend writes a LOD chain as nodes ``<name>_LOD0``..``<name>_LODk`` (the suffix Unity and
Unreal group by). ``import_levels`` runs Blender's glTF importer and returns the levels LOD0
first, each with its node transform baked into the mesh (the node empties are removed) and its
quads joined back (quad_pairs.py); a GLB without LOD names is one level, its meshes joined.
``arrange_levels`` puts a placed LOD0 and its coarser levels into one collection, the coarser
ones hidden (viewport and render) with LOD0's transform, and removes the levels an earlier
result left on the same object.
"""

from __future__ import annotations

import re
from pathlib import Path

import bpy
from mathutils import Matrix

from shared_protocol.errors import ErrorCode, ProtocolError

from .quad_pairs import join_quad_pairs

LOD_NAME = re.compile(r"_LOD(\d+)(?:\.\d{3})?$")  # Blender adds .001 when a name is taken
LEVEL_PROPERTY = "dreamcad_lod"  # the level on every object of a LOD set
LEVEL_OF_PROPERTY = "dreamcad_lod_of"  # on LOD1..: the LOD0 object's name


def import_levels(path: Path) -> list[bpy.types.Object]:
    """Import ``path``; the mesh objects it held, one per level, LOD0 first (see above)."""
    before = set(bpy.data.objects)
    result = bpy.ops.import_scene.gltf(filepath=str(path))
    created = [obj for obj in bpy.data.objects if obj not in before]
    meshes = [obj for obj in created if obj.type == "MESH"]
    if "FINISHED" not in result or not meshes:
        for obj in created:
            bpy.data.objects.remove(obj)
        raise ProtocolError(ErrorCode.GEOMETRY_FAILED, f"{Path(path).name} holds no mesh to import")
    for obj in meshes:  # bake transforms while the node empties (their parents) still exist
        obj.data.transform(obj.matrix_world)
    for obj in meshes:
        obj.parent = None
        obj.matrix_world = Matrix.Identity(4)
    for other in created:
        if other not in meshes:
            bpy.data.objects.remove(other)
    levels = _levels(meshes)
    for level in levels:
        join_quad_pairs(level.data)
    return levels


def _levels(meshes: list[bpy.types.Object]) -> list[bpy.types.Object]:
    numbered = {}
    for obj in meshes:
        match = LOD_NAME.search(obj.name)
        if match is None:
            return [join(meshes)]  # not a LOD chain: one asset in several parts
        numbered.setdefault(int(match.group(1)), []).append(obj)
    return [join(numbered[level]) for level in sorted(numbered)]


def join(meshes: list[bpy.types.Object]) -> bpy.types.Object:
    """Join transform-free mesh objects into the first one."""
    first = meshes[0]
    if len(meshes) > 1:
        with bpy.context.temp_override(
            active_object=first, selected_editable_objects=meshes, selected_objects=meshes
        ):
            bpy.ops.object.join()
    return first


def remove_levels(main: bpy.types.Object) -> None:
    """Remove the coarser levels an earlier result made for ``main``."""
    for obj in [o for o in bpy.data.objects if o.get(LEVEL_OF_PROPERTY) == main.name]:
        mesh = obj.data
        bpy.data.objects.remove(obj)
        if mesh is not None and mesh.users == 0:
            bpy.data.meshes.remove(mesh)


def arrange_levels(main: bpy.types.Object, coarser: list[bpy.types.Object],
                   parent: bpy.types.Collection) -> bpy.types.Collection | None:
    """One collection (under ``parent``) for ``main`` (LOD0, visible) and ``coarser`` (hidden).

    ``main`` is already placed; the coarser levels' meshes are in its local frame, so they take
    its matrix. Without coarser levels nothing changes beyond removing earlier ones.
    """
    remove_levels(main)
    if not coarser:
        return None
    bpy.context.view_layer.update()  # main's matrix_world from its new location/rotation/scale
    base = LOD_NAME.sub("", main.name)
    collection = _lod_collection(f"{base} LODs", parent)
    move_to_collection(main, collection)
    main[LEVEL_PROPERTY] = 0
    for level, obj in enumerate(coarser, start=1):
        obj.name = obj.data.name = f"{base}_LOD{level}"
        obj.matrix_world = main.matrix_world
        move_to_collection(obj, collection)
        obj[LEVEL_PROPERTY] = level
        obj[LEVEL_OF_PROPERTY] = main.name
        obj.hide_render = True
        if obj.name in bpy.context.view_layer.objects:
            obj.hide_set(True)
    return collection


def _lod_collection(name: str, parent: bpy.types.Collection) -> bpy.types.Collection:
    collection = bpy.data.collections.get(name)
    if collection is None:
        collection = bpy.data.collections.new(name)
    if collection != parent and collection.name not in parent.children:
        parent.children.link(collection)  # (a LOD0 replaced again is already inside it)
    return collection


def move_to_collection(obj: bpy.types.Object, collection: bpy.types.Collection) -> None:
    for old in list(obj.users_collection):
        if old != collection:
            old.objects.unlink(obj)
    if obj.name not in collection.objects:
        collection.objects.link(obj)
