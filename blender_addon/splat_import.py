"""A job's Gaussian splat file -> a coloured point cloud object beside its mesh.

The ``.ply`` (3DGS layout, read by splat_ply.py) becomes a mesh object of vertices only, named
``<asset>_gaussians``, with a ``Col`` colour attribute (the SH DC colour, sRGB) and ``opacity``
and ``scale`` float attributes per point, in the asset's collection, drawn and rendered as points
by a geometry-nodes modifier (loose vertices alone show nothing in object mode). Its points are
put exactly on the asset: the manifest's ``to_asset`` maps the file's coordinates to the
asset's (glTF, +Y up), glTF's frame turns into Blender's (+Z up) as the glTF importer does, and
the importer's shift to the bottom centre is taken off; the cloud is then parented to the mesh
object, so it follows every placement (cursor, align, scale). Vertex data moves through numpy and
``foreach_set``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np

from .importer import ORIGIN_SHIFT_PROPERTY, PROPERTY_PREFIX, dreamcad_collection
from .splat_ply import read_splats

SUFFIX = "_gaussians"
NODE_GROUP_NAME = "Dream CAD Gaussians as points"
MATERIAL_NAME = "Dream CAD Gaussians"
SOURCE_PROPERTY = f"{PROPERTY_PREFIX}gaussians_of"  # the job id, on the cloud (not a job asset)
# glTF (x, y, z) -> Blender (x, -z, y): the frame change Blender's glTF importer makes.
GLTF_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def file_to_object(to_asset: Sequence[float], origin_shift: Sequence[float]) -> np.ndarray:
    """(4, 4): the splat file's coordinates -> the mesh object's local ones."""
    matrix = np.asarray(to_asset, np.float64).reshape(4, 4) if len(to_asset) else np.eye(4)
    shift = np.eye(4)
    shift[:3, 3] = -np.asarray(origin_shift, np.float64)
    return shift @ GLTF_TO_BLENDER @ matrix


def import_splats(
    path: Path, name: str, to_asset: Sequence[float] = (), parent: bpy.types.Object | None = None
) -> bpy.types.Object:
    """Read ``path`` and make the point cloud ``<name>_gaussians`` (module docstring); with
    ``parent`` (the asset's mesh object) it is parented to it and placed on it."""
    splats = read_splats(Path(path).read_bytes())
    shift = tuple(parent.get(ORIGIN_SHIFT_PROPERTY, (0.0, 0.0, 0.0))) if parent else (0, 0, 0)
    matrix = file_to_object(to_asset, shift)
    points = splats.positions.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    mesh = bpy.data.meshes.new(name + SUFFIX)
    mesh.vertices.add(len(points))
    mesh.vertices.foreach_set("co", points.astype(np.float32).ravel())
    colour = mesh.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
    rgba = np.concatenate([splats.colours, np.ones((len(points), 1), np.float32)], axis=1)
    colour.data.foreach_set("color_srgb", rgba.astype(np.float32).ravel())
    mesh.color_attributes.active_color = colour
    opacity = mesh.attributes.new("opacity", "FLOAT", "POINT")
    opacity.data.foreach_set("value", splats.opacity)
    # A splat's size scales with the file's units: one number per point, the mean axis length.
    scale = mesh.attributes.new("scale", "FLOAT", "POINT")
    factor = float(np.cbrt(abs(np.linalg.det(matrix[:3, :3]))))
    scale.data.foreach_set("value", (splats.scales.mean(axis=1) * factor).astype(np.float32))
    mesh.update()
    cloud = bpy.data.objects.new(name + SUFFIX, mesh)
    collections = parent.users_collection if parent else (dreamcad_collection(),)
    for collection in collections:
        collection.objects.link(cloud)
    if parent is not None:
        cloud.parent = parent
        cloud.matrix_parent_inverse.identity()  # points are already in the parent's frame
        cloud[SOURCE_PROPERTY] = parent.get(f"{PROPERTY_PREFIX}job_id", "")
    show_as_points(cloud)
    return cloud


def show_as_points(cloud: bpy.types.Object) -> None:
    """Draw and render the vertices as coloured points: loose vertices are invisible in
    object mode, so a geometry-nodes modifier turns them into points (radius: the ``scale``
    attribute) with a material reading ``Col``. The mesh itself keeps the plain vertices."""
    modifier = cloud.modifiers.new("Gaussians as points", "NODES")
    modifier.node_group = _points_node_group()
    if not cloud.data.materials:
        cloud.data.materials.append(_points_material())


def _points_node_group() -> bpy.types.NodeTree:
    tree = bpy.data.node_groups.get(NODE_GROUP_NAME)
    if tree is not None:
        return tree
    tree = bpy.data.node_groups.new(NODE_GROUP_NAME, "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    group_in, group_out = tree.nodes.new("NodeGroupInput"), tree.nodes.new("NodeGroupOutput")
    to_points = tree.nodes.new("GeometryNodeMeshToPoints")
    radius = tree.nodes.new("GeometryNodeInputNamedAttribute")
    radius.data_type = "FLOAT"
    radius.inputs["Name"].default_value = "scale"
    material = tree.nodes.new("GeometryNodeSetMaterial")
    material.inputs["Material"].default_value = _points_material()
    tree.links.new(group_in.outputs[0], to_points.inputs["Mesh"])
    tree.links.new(radius.outputs["Attribute"], to_points.inputs["Radius"])
    tree.links.new(to_points.outputs["Points"], material.inputs["Geometry"])
    tree.links.new(material.outputs["Geometry"], group_out.inputs[0])
    return tree


def _points_material() -> bpy.types.Material:
    material = bpy.data.materials.get(MATERIAL_NAME)
    if material is not None:
        return material
    material = bpy.data.materials.new(MATERIAL_NAME)
    if material.node_tree is None:  # Blender 4.x; 5.x gives every material its node tree
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    shader = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    colour = nodes.new("ShaderNodeAttribute")
    colour.attribute_name = "Col"
    links.new(colour.outputs["Color"], shader.inputs["Base Color"])
    return material
