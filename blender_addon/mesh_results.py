"""A texture/optimize result -> back onto the object it was made from (or beside it).

Every result GLB comes from the backend in one frame: its bounds' bottom centre at the origin
(glTF +Y up, which Blender's importer turns back to +Z). ``MeshTarget.to_local`` is the matrix
from that frame to the object's local space, fixed when the job is submitted: for a mesh sent
from the scene (exported in world space, mesh_export.py) it is the inverse world matrix after
adding back the world bottom centre; for a re-optimize it is what the object's own earlier
result needed, kept on the object (``dreamcad_result_to_local``). So the result lands where the
object is whatever its rotation, scale or parent, and a re-optimize lands where the first
result did. REPLACE swaps the object's mesh and materials (the modifiers baked into the sent
mesh are removed so they are not applied twice); BESIDE adds a new object next to it. A LOD
chain becomes a LOD set around the object (lod_levels.py). Callers push the undo step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from shared_protocol.errors import ErrorCode, ProtocolError

from . import importer, lod_levels
from .mesh_export import ExportedMesh, Matrix4, matrix_rows

TO_LOCAL_PROPERTY = "dreamcad_result_to_local"
BESIDE_GAP = 0.25  # of the object's width, between it and a result placed beside it
_SUFFIXES = {"texture": "textured", "optimize": "game-ready"}


@dataclass(frozen=True)
class MeshTarget:
    """Where a mesh job's result goes: an object (by name: never a bpy object across ticks)."""

    object_name: str
    mode: str  # REPLACE or BESIDE
    to_local: Matrix4
    applied_modifiers: tuple[str, ...] = ()


def target_for_export(exported: ExportedMesh, mode: str) -> MeshTarget:
    """The target of a job that sends ``exported`` (world space, see the module docstring)."""
    world = Matrix(exported.world_matrix)
    if abs(world.determinant()) < 1e-12:
        raise ProtocolError(ErrorCode.INVALID_FIELD,
                            f"{exported.object_name} is scaled to zero along an axis",
                            field="mesh", hint="Give the object a non-zero scale first.")
    to_local = world.inverted() @ Matrix.Translation(Vector(exported.bottom_centre))
    return MeshTarget(exported.object_name, mode, matrix_rows(to_local),
                      exported.applied_modifiers)


def target_for_reoptimize(obj: bpy.types.Object, mode: str) -> MeshTarget:
    """The target of a re-optimize of ``obj``: the frame its own result had."""
    stored = obj.get(TO_LOCAL_PROPERTY)
    if stored is not None and len(stored) == 16:
        to_local = Matrix(np.asarray(stored, dtype=np.float64).reshape(4, 4).tolist())
    else:  # a generated import: its mesh is the result, moved to its bottom centre
        to_local = Matrix.Translation(_bottom_centre(obj.data))
    return MeshTarget(obj.name, mode, matrix_rows(to_local))


def import_onto(path: Path, target: MeshTarget, provenance: importer.Provenance,
                task: str) -> bpy.types.Object:
    """Put the result at ``path`` on (or beside) the target object; returns the LOD0 object."""
    obj = bpy.data.objects.get(target.object_name)
    if obj is None:
        raise ProtocolError(ErrorCode.MISSING_FIELD,
                            f"the object {target.object_name!r} is no longer in this file",
                            field="mesh", hint="Import the result from the queue instead.")
    levels = lod_levels.import_levels(path)
    to_local = Matrix(target.to_local)
    for level in levels:
        level.data.transform(to_local)
        if to_local.determinant() < 0:
            level.data.flip_normals()
        level.data.update()
    parent = obj.users_collection[0] if obj.users_collection else bpy.context.scene.collection
    if target.mode == "REPLACE":
        main = _replace_mesh(obj, levels[0], target.applied_modifiers)
    else:
        name = f"{obj.name} {_SUFFIXES.get(task, 'result')}"
        main = _beside(obj, levels[0], f"{name}_LOD0" if len(levels) > 1 else name)
        parent = importer.dreamcad_collection()
        lod_levels.move_to_collection(main, parent)
    importer.tag(main, provenance)
    main[TO_LOCAL_PROPERTY] = [v for row in target.to_local for v in row]
    lod_levels.arrange_levels(main, levels[1:], parent)
    importer.select_only(main)
    bpy.context.view_layer.update()
    return main


def _replace_mesh(obj: bpy.types.Object, result: bpy.types.Object,
                  applied_modifiers: tuple[str, ...]) -> bpy.types.Object:
    old = obj.data
    obj.data = result.data
    obj.data.name = obj.name
    bpy.data.objects.remove(result)
    for name in applied_modifiers:
        modifier = obj.modifiers.get(name)
        if modifier is not None:
            obj.modifiers.remove(modifier)
    for slot in obj.material_slots:
        if slot.link == "OBJECT":  # would hide the result's material behind the old one
            slot.link = "DATA"
    if old is not None and old.users == 0:
        bpy.data.meshes.remove(old)
    return obj


def _beside(obj: bpy.types.Object, result: bpy.types.Object, name: str) -> bpy.types.Object:
    """``result`` with ``obj``'s transform, moved along world X past ``obj``'s bounds."""
    corners = np.array([tuple(obj.matrix_world @ Vector(c)) for c in obj.bound_box])  # (8, 3)
    width = float(corners[:, 0].max() - corners[:, 0].min())
    result.matrix_world = Matrix.Translation((width * (1 + BESIDE_GAP), 0, 0)) @ obj.matrix_world
    result.name = result.data.name = name
    return result


def _bottom_centre(mesh: bpy.types.Mesh) -> Vector:
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", coords)
    points = coords.reshape(-1, 3)  # (n, 3)
    low, high = points.min(axis=0), points.max(axis=0)
    return Vector(((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]))
