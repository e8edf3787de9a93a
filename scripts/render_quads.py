"""Render triangle and quad remeshes of the same meshes side by side, wireframe over solid.

Run with Blender's Python from the repository root:

    .venv/blender/bin/python scripts/render_quads.py -o docs/images/quads.png \\
        --pair "Inflate figure" tri.glb quad.glb --pair "Procedural torus" tri.glb quad.glb

Each ``--pair`` is one row: a result of ``dreamcad-backend postprocess MESH --faces N`` and one
of the same with ``--quads``. The quad GLB is imported the way the add-on imports it (glTF's
triangle pairs joined back into quads by ``blender_addon.quad_pairs``), so the picture shows the
faces an artist gets. Shading is emission-only (a facing-ratio grey, black wires from a
Wireframe modifier copy), so a few Cycles samples give a noise-free, small PNG. Prints one JSON
line per mesh: faces, quad fraction and irregular vertices (interior vertices whose valence is
not 4), the figures of the closing note.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler, Matrix

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blender_addon.quad_pairs import join_quad_pairs  # noqa: E402

CELL = 2.4  # grid spacing; each mesh is scaled to fit a 2 x 2 square
LABEL_SIZE = 0.12
RESOLUTION_PER_CELL = 450
WIRE_THICKNESS = 0.006  # of the unit-sized mesh
WELD_DISTANCE = 1e-5  # of the unit-sized mesh: only seam copies of one vertex are this close
TILT = Euler((-0.45, 0.0, 0.5)).to_matrix().to_4x4()


def import_mesh(path: Path, join_quads: bool) -> bpy.types.Object:
    """Import ``path`` as one mesh object; joins the quad pairs when asked."""
    before = set(bpy.data.objects)
    assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
    meshes = [o for o in set(bpy.data.objects) - before if o.type == "MESH"]
    assert len(meshes) == 1, f"{path}: {len(meshes)} meshes"
    obj = meshes[0]
    obj.parent = None
    if join_quads:
        join_quad_pairs(obj.data)
    return obj


def mesh_figures(mesh: bpy.types.Mesh) -> dict[str, float]:
    """Faces by size, and irregular interior vertices: valence not 4 on a quad-dominant mesh,
    not 6 on a triangle mesh (the valence a regular grid of that face type has)."""
    sizes = np.empty(len(mesh.polygons), np.int64)
    mesh.polygons.foreach_get("loop_total", sizes)
    edges = np.empty(len(mesh.edges) * 2, np.int64)
    mesh.edges.foreach_get("vertices", edges)
    valence = np.bincount(edges, minlength=len(mesh.vertices))
    loop_edges = np.empty(len(mesh.loops), np.int64)
    mesh.loops.foreach_get("edge_index", loop_edges)
    boundary_edges = np.flatnonzero(np.bincount(loop_edges, minlength=len(mesh.edges)) == 1)
    on_boundary = np.zeros(len(mesh.vertices), bool)
    on_boundary[edges.reshape(-1, 2)[boundary_edges].ravel()] = True
    interior = ~on_boundary
    regular = 4 if (sizes == 4).mean() > 0.5 else 6
    irregular = interior & (valence != regular)
    return {
        "polygons": len(sizes), "triangles": int((sizes == 3).sum()),
        "quads": int((sizes == 4).sum()), "ngons": int((sizes > 4).sum()),
        "quad_fraction": round(float((sizes == 4).mean()), 4),
        "triangle_count": int((sizes - 2).sum()),  # as a game engine will count it
        "vertices": len(mesh.vertices), "boundary_vertices": int(on_boundary.sum()),
        "regular_valence": regular, "irregular_vertices": int(irregular.sum()),
        "irregular_fraction": round(float(irregular.sum() / max(interior.sum(), 1)), 4),
        "valence_histogram": {int(k): int(v) for k, v in enumerate(np.bincount(
            valence[interior])) if v},
    }


def emission_material(name: str, facing: bool, colour: tuple[float, float, float]):
    """Emission only (no light sampling: no noise). ``facing``: lighter where the surface
    faces the camera, so the shape reads without lights."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*colour, 1.0)
    if facing:
        weight = nodes.new("ShaderNodeLayerWeight")
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (0.92, 0.92, 0.9, 1.0)
        ramp.color_ramp.elements[1].color = (0.38, 0.4, 0.45, 1.0)
        links.new(weight.outputs["Facing"], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def place(obj: bpy.types.Object, column: int, row: int, solid, wire) -> None:
    """Scale ``obj`` to the cell, centre it there, give it the solid look and a wire copy."""
    bpy.context.view_layer.update()
    corners = np.array([obj.matrix_world @ v.co for v in obj.data.vertices])
    low, high = corners.min(axis=0), corners.max(axis=0)
    scale = 2.0 / float((high - low).max())
    obj.data.transform(obj.matrix_world)
    obj.matrix_world.identity()
    centre = (low + high) / 2
    obj.data.transform(_matrix(scale, -centre * scale))
    weld(obj.data)
    obj.data.transform(TILT)  # a three-quarter view from above, the same for every mesh
    obj.location = (column * CELL, 0.0, -row * CELL)
    obj.data.materials.clear()
    obj.data.materials.append(solid)
    wire_obj = obj.copy()
    wire_obj.data = obj.data.copy()
    wire_obj.data.materials.clear()
    wire_obj.data.materials.append(wire)
    bpy.context.scene.collection.objects.link(wire_obj)
    modifier = wire_obj.modifiers.new("Wire", "WIREFRAME")
    modifier.thickness = WIRE_THICKNESS * 2.0
    modifier.use_relative_offset = False
    modifier.offset = 1.0  # outwards: the wires sit on the surface, not inside it


def _matrix(scale: float, offset: np.ndarray):
    return Matrix.Translation(tuple(offset)) @ Matrix.Scale(scale, 4)


def weld(mesh: bpy.types.Mesh) -> None:
    """Merge the vertices glTF split along UV seams (UVs are per corner in Blender, so they are
    kept): without this every seam would count as a boundary in the figures."""
    import bmesh  # only once bpy is imported

    editable = bmesh.new()
    try:
        editable.from_mesh(mesh)
        bmesh.ops.remove_doubles(editable, verts=editable.verts, dist=WELD_DISTANCE)
        editable.to_mesh(mesh)
    finally:
        editable.free()
    mesh.update()


def label(text: str, column: float, row: int, material) -> None:
    curve = bpy.data.curves.new(f"label {text}", "FONT")
    curve.body = text
    curve.size = LABEL_SIZE
    curve.align_x = "CENTER"
    obj = bpy.data.objects.new(f"label {text}", curve)
    obj.location = (column * CELL, -1.5, -row * CELL - 1.05)
    obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
    curve.materials.append(material)
    bpy.context.scene.collection.objects.link(obj)


def render(pairs: list[tuple[str, Path, Path]], output: Path) -> list[dict]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    solid = emission_material("solid", True, (0.8, 0.8, 0.8))
    wire = emission_material("wire", False, (0.02, 0.02, 0.03))
    ink = emission_material("ink", False, (0.05, 0.05, 0.05))
    figures = []
    for row, (title, tri_path, quad_path) in enumerate(pairs):
        for column, (path, quads) in enumerate(((tri_path, False), (quad_path, True))):
            obj = import_mesh(path, quads)
            place(obj, column, row, solid, wire)
            numbers = mesh_figures(obj.data)
            figures.append({"mesh": title, "file": path.name, "remeshed_to_quads": quads,
                            **numbers})
            kind = (f"--quads: {numbers['quads']} quads, {numbers['triangles']} triangles\n"
                    f"{numbers['irregular_vertices']} irregular vertices" if quads
                    else f"triangles: {numbers['polygons']}\n"
                    f"{numbers['irregular_vertices']} vertices of valence != 6")
            label(f"{title}\n{kind}", column, row, ink)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = 2 * CELL
    camera.location = (CELL / 2, -10.0, -(len(pairs) - 1) * CELL / 2 - 0.1)
    camera.rotation_euler = (np.pi / 2, 0.0, 0.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    world = bpy.data.worlds.new("white")
    world.color = (1.0, 1.0, 1.0)
    if world.node_tree is not None:  # Blender 5 worlds have nodes: the Background node counts
        world.node_tree.nodes["Background"].inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4  # emission only: the samples only anti-alias the wires
    scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    scene.render.resolution_x = 2 * RESOLUTION_PER_CELL
    scene.render.resolution_y = len(pairs) * RESOLUTION_PER_CELL + 20
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    settings = scene.render.image_settings
    # Grey levels only: one channel keeps the PNG small (docs images stay under 300 KB).
    settings.file_format, settings.color_mode, settings.compression = "PNG", "BW", 100
    output.parent.mkdir(parents=True, exist_ok=True)
    scene.render.filepath = str(output.resolve())
    bpy.ops.render.render(write_still=True)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=3, action="append", required=True,
                        metavar=("TITLE", "TRIANGLES_GLB", "QUADS_GLB"))
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    pairs = [(title, Path(tri), Path(quad)) for title, tri, quad in args.pair]
    for entry in render(pairs, args.output):
        print("DREAMCAD_JSON" + json.dumps(entry))


if __name__ == "__main__":
    main()
