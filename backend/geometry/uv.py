"""Stage 3, UV unwrap: planar-projected charts that are never mirrored, packed with padding.

Faces are grouped by the box direction their normal is nearest to, split into edge-connected
charts, tiny charts are folded into a neighbour whose axis still sees them from the front, and
every chart is projected along its axis. Because each face's normal is within 90 deg of its
chart's axis, the projection keeps its winding: no flipped (mirrored) UVs, so tangent-space
normal maps are right (unlike xatlas' default, which mirrors a third of the faces). Charts are
turned to their principal axes and packed at one texel density by their rasterised shapes
(uv_pack.py; by their boxes above ``uv_pack.MAX_SHAPE_CHARTS`` charts), with padding in texels
of the target texture size. UVs use the glTF convention: u right, v down from the top-left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.geometry import adjacency, tolerances
from backend.geometry.uv_pack import pack_charts

BOX_AXES = np.array(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64
)


@dataclass
class UVResult:
    """The mesh split along chart seams, with UVs.

    vertices (n', 3) float32, faces (m, 3) int64, uvs (n', 2) float32 (glTF convention),
    source_vertex (n',) int64 index of each vertex in the input, chart (m,) int64 per face.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    source_vertex: np.ndarray
    chart: np.ndarray
    charts: int
    utilization: float
    flipped_faces: int


def unit_face_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (m, 3) float64 and areas (m,) of faces (m, 3) over vertices (n, 3)."""
    corners = vertices[faces].astype(np.float64)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(cross, axis=1)
    return cross / np.maximum(length, 1e-30)[:, None], 0.5 * length


def uv_signed_areas(uvs: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed UV area per face, positive when counter-clockwise with v pointing up. (m,)"""
    corners = uvs[faces].astype(np.float64)
    corners[..., 1] = -corners[..., 1]  # glTF v runs down; winding is judged with v up
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def count_flipped(uvs: np.ndarray, faces: np.ndarray) -> int:
    """Faces whose UV triangle is mirrored (or collapsed) relative to their 3D winding."""
    return int(np.count_nonzero(uv_signed_areas(uvs, faces) <= 0))


def segment_charts(
    normals: np.ndarray, faces: np.ndarray, n_vertices: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Chart id per face (m,) and each chart's projection axis (c, 3).

    normals (m, 3) unit face normals, faces (m, 3); groups (m,) int or None: faces of one
    group (the two triangles of a quad, which share an edge) take one direction from their
    summed normal, so they always land in the same chart.
    """
    facing = normals
    if groups is not None:
        summed = np.zeros((int(groups.max()) + 1, 3))
        np.add.at(summed, groups, normals)
        facing = summed[groups]
    direction = np.argmax(facing @ BOX_AXES.T, axis=1)
    a, b, _ = adjacency.manifold_face_pairs(faces, n_vertices)
    chart = _components(len(faces), a, b, direction[a] == direction[b])
    axes = BOX_AXES[direction[np.unique(chart, return_index=True)[1]]]
    for _ in range(3):  # fold tiny charts (noise at direction borders) into a neighbour
        chart, axes, merged = _merge_small_charts(normals, chart, axes, a, b)
        if not merged:
            break
    return chart, axes


def _components(n_faces: int, a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return adjacency.component_labels(n_faces, a[keep], b[keep])


def _merge_small_charts(
    normals: np.ndarray, chart: np.ndarray, axes: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    n_charts = len(axes)
    sizes = np.bincount(chart, minlength=n_charts)
    border = chart[a] != chart[b]
    src = np.concatenate([chart[a][border], chart[b][border]])
    dst = np.concatenate([chart[b][border], chart[a][border]])
    take = (sizes[src] < tolerances.MIN_CHART_FACES_MERGE) & (sizes[dst] > sizes[src])
    src, dst = src[take], dst[take]
    if len(src) == 0:
        return chart, axes, 0
    # Each small chart picks the larger neighbour it shares the most edges with ...
    keys, counts = np.unique(src * n_charts + dst, return_counts=True)
    key_src = keys // n_charts
    order = np.lexsort((-counts, key_src))
    best = order[np.unique(key_src[order], return_index=True)[1]]
    target = np.arange(n_charts)
    target[key_src[best]] = keys[best] % n_charts
    moving = target != np.arange(n_charts)
    chained = moving & moving[target]  # its neighbour moves too: wait for the next round
    target[chained] = np.flatnonzero(chained)
    # ... and joins it only if that chart's axis sees every one of its faces from the front.
    facing = np.einsum("ij,ij->i", normals, axes[target[chart]])
    bad = np.zeros(n_charts, dtype=bool)
    np.logical_or.at(bad, chart, facing < tolerances.CHART_ANGLE_COS * 0.5)
    target[bad] = np.flatnonzero(bad)
    moved = int(np.count_nonzero(target != np.arange(n_charts)))
    labels, relabel = np.unique(target, return_inverse=True)
    return relabel[chart], axes[labels], moved


def project_charts(
    vertices: np.ndarray, faces: np.ndarray, chart: np.ndarray, axes: np.ndarray
) -> np.ndarray:
    """2D coordinates of every face corner in its chart's plane: (m, 3, 2) float64, v up.

    Each chart is rotated onto its principal axes so its bounding box is tight.
    """
    axis = axes[chart]
    helper = np.where(np.abs(axis[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    tangent = np.cross(helper, axis)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    bitangent = np.cross(axis, tangent)
    corners = vertices[faces].astype(np.float64)
    flat = np.stack(
        [np.einsum("ijk,ik->ij", corners, tangent), np.einsum("ijk,ik->ij", corners, bitangent)],
        axis=2,
    )
    # Principal axes per chart from corner second moments (a rotation: never mirrors).
    count = np.bincount(chart, minlength=len(axes)) * 3.0
    owner = np.repeat(chart, 3)
    xy = flat.reshape(-1, 2)
    mean = np.stack([np.bincount(owner, xy[:, k], len(axes)) for k in (0, 1)], axis=1)
    mean /= np.maximum(count, 1)[:, None]
    centred = xy - mean[owner]
    sxx = np.bincount(owner, centred[:, 0] ** 2, len(axes))
    syy = np.bincount(owner, centred[:, 1] ** 2, len(axes))
    sxy = np.bincount(owner, centred[:, 0] * centred[:, 1], len(axes))
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    cos, sin = np.cos(angle)[owner], np.sin(angle)[owner]
    rotated = np.stack(
        [cos * centred[:, 0] + sin * centred[:, 1], -sin * centred[:, 0] + cos * centred[:, 1]],
        axis=1,
    )
    return rotated.reshape(-1, 3, 2)


def unwrap(
    vertices: np.ndarray,
    faces: np.ndarray,
    texture_size: int = 1024,
    padding_px: int = tolerances.UV_PADDING_PX,
    groups: np.ndarray | None = None,
) -> UVResult:
    """Cut ``faces`` (m, 3) over ``vertices`` (n, 3) into charts and give every corner a UV.

    ``groups`` (m,) keeps faces together in one chart (see :func:`segment_charts`).
    """
    normals, _areas = unit_face_normals(vertices, faces)
    chart, axes = segment_charts(normals, faces, len(vertices), groups)
    corners = project_charts(vertices, faces, chart, axes)
    uv_corners = pack_charts(corners, chart, len(axes), texture_size, padding_px)
    # A vertex is split once per chart it touches: those are the seams.
    corner_key = faces.reshape(-1) * np.int64(len(axes)) + np.repeat(chart, 3)
    keys, first, inverse = np.unique(corner_key, return_index=True, return_inverse=True)
    new_faces = inverse.reshape(-1, 3).astype(np.int64)
    source_vertex = keys // len(axes)
    uvs = uv_corners.reshape(-1, 2)[first].astype(np.float32)
    signed = uv_signed_areas(uvs, new_faces)
    return UVResult(
        vertices=np.asarray(vertices, dtype=np.float32)[source_vertex],
        faces=new_faces,
        uvs=uvs,
        source_vertex=source_vertex,
        chart=chart,
        charts=len(axes),
        utilization=float(np.clip(np.sum(np.abs(signed)), 0.0, 1.0)),
        flipped_faces=int(np.count_nonzero(signed <= 0)),
    )
