"""Join the quads of a quad-remeshed result back together after Blender's glTF import.

glTF carries triangles only, so the backend writes a quad remesh as triangle pairs: faces 2i and
2i+1 are one quad split along its diagonal, and the mesh's extras say how many pairs there are
(``quad_pairs``, which Blender's importer keeps as a custom property of the mesh). Here each
pair's shared edge is found with numpy and all of them are dissolved in one bmesh call, which
keeps UVs and the other corner data. A pair that does not share exactly one edge (its diagonal
was split, e.g. on a UV seam) stays two triangles and is not counted.
"""

from __future__ import annotations

import bmesh
import bpy
import numpy as np

PAIRS_PROPERTY = "quad_pairs"


def join_quad_pairs(mesh: bpy.types.Mesh) -> int:
    """Dissolve each recorded pair's diagonal; returns how many quads were made."""
    pairs = int(mesh.get(PAIRS_PROPERTY, 0) or 0)
    if PAIRS_PROPERTY in mesh:
        del mesh[PAIRS_PROPERTY]  # once joined, the count no longer describes the faces
    pairs = min(pairs, len(mesh.polygons) // 2)
    if pairs <= 0:
        return 0
    edge_indices = diagonal_edges(mesh, pairs)
    if len(edge_indices) == 0:
        return 0
    editable = bmesh.new()
    try:
        editable.from_mesh(mesh)
        editable.edges.ensure_lookup_table()
        edges = [editable.edges[int(i)] for i in edge_indices]
        bmesh.ops.dissolve_edges(editable, edges=edges, use_verts=False, use_face_split=False)
        editable.to_mesh(mesh)
    finally:
        editable.free()
    mesh.update()
    return len(edge_indices)


def diagonal_edges(mesh: bpy.types.Mesh, pairs: int) -> np.ndarray:
    """Indices (k,) of the edges shared by faces 2i and 2i+1, for the pairs that share one."""
    count = 2 * pairs
    totals = np.empty(len(mesh.polygons), dtype=np.int64)
    starts = np.empty(len(mesh.polygons), dtype=np.int64)
    mesh.polygons.foreach_get("loop_total", totals)
    mesh.polygons.foreach_get("loop_start", starts)
    if not (totals[:count] == 3).all():
        return np.empty(0, dtype=np.int64)  # not the triangle pairs the extras promise
    corners = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corners)
    triangles = corners[starts[:count, None] + np.arange(3)]  # (2 * pairs, 3)
    first, second = triangles[0::2], triangles[1::2]  # (pairs, 3) each
    in_both = (first[:, :, None] == second[:, None, :]).any(axis=2)  # (pairs, 3)
    sharing = in_both.sum(axis=1) == 2
    shared = first[sharing][in_both[sharing]].reshape(-1, 2)
    shared.sort(axis=1)
    edge_vertices = np.empty(len(mesh.edges) * 2, dtype=np.int64)
    mesh.edges.foreach_get("vertices", edge_vertices)
    edge_vertices = np.sort(edge_vertices.reshape(-1, 2), axis=1)
    stride = len(mesh.vertices) + 1
    edge_keys = edge_vertices[:, 0] * stride + edge_vertices[:, 1]
    order = np.argsort(edge_keys)
    wanted = shared[:, 0] * stride + shared[:, 1]
    found = np.searchsorted(edge_keys, wanted, sorter=order)
    found = np.minimum(found, len(order) - 1)
    hits = edge_keys[order[found]] == wanted
    return np.unique(order[found[hits]])
