"""A mesh object of the scene -> GLB bytes in memory, for the texture and optimize tasks.

Blender's own glTF exporter writes the file: it already turns node-tree materials into glTF
PBR with their image textures embedded, writes colour attributes as ``COLOR_0`` and UVs as
``TEXCOORD_0``, and is kept in step with Blender by Khronos. A writer of our own would have to
redo all of that (walking node trees to find the base colour image, re-encoding packed and
generated images) and would fall behind each Blender release. What the exporter does not do
the way a job needs is placement, so the object is exported through a throwaway copy: its
evaluated mesh (modifiers applied) with the world transform baked in, on an object with an
identity matrix, alone in the selection. The GLB therefore holds world-space geometry whatever
the backend does with node transforms, and ``ExportedMesh`` remembers the world matrix and the
bounds' bottom centre so that the result can be put back in place (mesh_results.py). The
exporter writes a file; it goes to a temporary folder that is removed before returning, and the
user's selection and active object are restored.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from shared_protocol.errors import ErrorCode, ProtocolError

Matrix4 = tuple[tuple[float, float, float, float], ...]

# Only what a texture/optimize job reads: geometry, UVs, materials, colour attributes.
_EXPORT_OPTIONS = {
    "export_format": "GLB",
    "use_selection": True,
    "export_apply": False,  # the copy already is the evaluated mesh
    "export_yup": True,
    "export_texcoords": True,
    # The backend reads positions, UVs and colours and works its normals out from the surface;
    # sent normals would split every vertex of a flat-shaded mesh three ways (an 800k-triangle
    # flat sphere: 70 MiB with normals, over the 64 MiB frame limit).
    "export_normals": False,
    "export_materials": "EXPORT",
    "export_image_format": "AUTO",
    "export_vertex_color": "ACTIVE",  # colours count even when no material reads them
    "export_animations": False,
    "export_skins": False,
    "export_morph": False,
    "export_extras": False,
    "export_cameras": False,
    "export_lights": False,
}


@dataclass(frozen=True)
class ExportedMesh:
    """One object as sent: GLB bytes (world space, +Y up) and where the object was.

    ``bottom_centre`` is the world-space (Blender, +Z up) bottom centre of the evaluated mesh's
    bounds: the backend moves its result so that point is the origin, so adding it back (then
    going into the object's local space with the inverse of ``world_matrix``) puts the result
    where the object is. ``applied_modifiers`` are the modifiers baked into the GLB: a result
    that replaces the object's mesh must not have them applied a second time.
    """

    object_name: str
    glb: bytes
    world_matrix: Matrix4
    bottom_centre: tuple[float, float, float]
    faces: int  # triangles, as the backend counts them
    applied_modifiers: tuple[str, ...]


def export_object(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> ExportedMesh:
    """``obj`` (a mesh object) as the GLB a texture or optimize job takes."""
    if obj.type != "MESH":
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{obj.name} is not a mesh object",
                            field="mesh", hint="Select mesh objects only.")
    world = obj.matrix_world.copy()
    mesh = world_space_mesh(obj, depsgraph)
    try:
        if len(mesh.polygons) == 0:
            raise ProtocolError(ErrorCode.INVALID_FIELD, f"{obj.name} has no faces",
                                field="mesh", hint="Texture and optimize work on surfaces.")
        bottom = _bottom_centre(mesh)
        mesh.calc_loop_triangles()
        faces = len(mesh.loop_triangles)
        glb = _export_alone(mesh, obj.name)
    finally:
        bpy.data.meshes.remove(mesh)
    return ExportedMesh(
        object_name=obj.name,
        glb=glb,
        world_matrix=matrix_rows(world),
        bottom_centre=bottom,
        faces=faces,
        applied_modifiers=tuple(m.name for m in obj.modifiers if m.show_viewport),
    )


def world_space_mesh(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> bpy.types.Mesh:
    """A new mesh datablock: ``obj`` evaluated (modifiers applied) in world coordinates.

    Materials are those the object shows, object-linked slots included. A mirroring transform
    (negative determinant) turns faces inside out when baked, so their winding is flipped back.
    """
    evaluated = obj.evaluated_get(depsgraph)
    mesh = bpy.data.meshes.new_from_object(evaluated, preserve_all_data_layers=True,
                                           depsgraph=depsgraph)
    mesh.transform(obj.matrix_world)
    if obj.matrix_world.determinant() < 0:
        mesh.flip_normals()
    for index, slot in enumerate(obj.material_slots):
        if index < len(mesh.materials):
            mesh.materials[index] = slot.material
    mesh.update()
    return mesh


def matrix_rows(matrix: Matrix) -> Matrix4:
    return tuple(tuple(float(v) for v in row) for row in matrix)  # type: ignore[return-value]


def _bottom_centre(mesh: bpy.types.Mesh) -> tuple[float, float, float]:
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", coords)
    points = coords.reshape(-1, 3)  # (n, 3)
    low, high = points.min(axis=0), points.max(axis=0)
    return (float(low[0] + high[0]) / 2, float(low[1] + high[1]) / 2, float(low[2]))


def _export_alone(mesh: bpy.types.Mesh, name: str) -> bytes:
    """Export ``mesh`` on a temporary identity-matrix object, the only one selected."""
    scene = bpy.context.scene
    view_layer = bpy.context.view_layer
    carrier = bpy.data.objects.new(name, mesh)  # named like the object: the GLB's node name
    scene.collection.objects.link(carrier)
    selected = [o.name for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active.name if view_layer.objects.active else None
    try:
        for other in view_layer.objects:
            other.select_set(False)
        carrier.select_set(True)
        view_layer.objects.active = carrier
        with tempfile.TemporaryDirectory(prefix="dreamcad-mesh-") as folder:
            path = Path(folder) / "mesh.glb"
            result = bpy.ops.export_scene.gltf(filepath=str(path), **_EXPORT_OPTIONS)
            if "FINISHED" not in result or not path.is_file():
                raise ProtocolError(ErrorCode.INVALID_FIELD,
                                    f"Blender's glTF exporter could not write {name}",
                                    field="mesh")
            return path.read_bytes()
    finally:
        bpy.data.objects.remove(carrier)
        _restore_selection(view_layer, selected, active)


def _restore_selection(view_layer: bpy.types.ViewLayer, selected: list[str],
                       active: str | None) -> None:
    for name in selected:
        obj = view_layer.objects.get(name)
        if obj is not None:
            obj.select_set(True)
    view_layer.objects.active = view_layer.objects.get(active) if active else None
