"""Marching cubes in torch, so TripoSR's surface is extracted on the GPU next to its density.

Upstream uses the compiled torchmcubes extension; we build the case table ourselves instead.
For each of the 256 inside/outside patterns of a cube's corners, the crossing points on each
cube face are joined into segments (an ambiguous face, two diagonal corners inside, always
keeps its inside corners apart; the rule depends on that face alone, so neighbouring cubes
agree and the mesh stays closed), the segments are chained into loops and each loop is
fanned into triangles, wound counter-clockwise seen from outside (the object is where the
level is positive). Extraction is then a handful of tensor ops over the active cells, with
one vertex per crossed grid edge shared by every cell around it.

Differences from scikit-image's Lewiner variant (the CPU path): identical vertex positions
(linear interpolation on grid edges), but ambiguous cells are split by the fixed face rule
rather than by Lewiner's interior tests, so a field with saddles may give a slightly different
triangulation there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

# Corner c sits at CORNERS[c] (x, y, z offsets); edge e joins corners EDGES[e].
CORNERS = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]
)
EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6],
     [3, 7]]
)
# Faces as corner cycles, with their outward normals.
FACES = (
    ((0, 1, 2, 3), (0, 0, -1)), ((4, 5, 6, 7), (0, 0, 1)), ((0, 1, 5, 4), (0, -1, 0)),
    ((3, 2, 6, 7), (0, 1, 0)), ((0, 3, 7, 4), (-1, 0, 0)), ((1, 2, 6, 5), (1, 0, 0)),
)


def _edge_index(a: int, b: int) -> int:
    for index, (p, q) in enumerate(EDGES):
        if {p, q} == {a, b}:
            return index
    raise KeyError((a, b))


def _face_segments(case: int, corners: tuple[int, ...], normal: np.ndarray) -> list[tuple]:
    """Directed segments (edge, edge) on one face: inside corners on their left from outside."""
    inside = [(case >> c) & 1 for c in corners]
    crossings = [i for i in range(4) if inside[i] != inside[(i + 1) % 4]]
    if not crossings:
        return []
    if len(crossings) == 2:
        pairs = [tuple(crossings)]
    else:  # ambiguous: cut off each inside corner on its own
        pairs = [((i - 1) % 4, i) for i in range(4) if inside[i]]
    segments = []
    for first, second in pairs:
        edge_a = _edge_index(corners[first], corners[(first + 1) % 4])
        edge_b = _edge_index(corners[second], corners[(second + 1) % 4])
        start, end = _midpoint(edge_a), _midpoint(edge_b)
        witness = CORNERS[[corners[i] for i in range(4) if inside[i]]].mean(axis=0)
        if len(crossings) == 4:  # the corner this segment cuts off
            witness = CORNERS[corners[second]].astype(float)
        turn = np.cross(end - start, witness - start) @ normal
        segments.append((edge_a, edge_b) if turn > 0 else (edge_b, edge_a))
    return segments


def _faces_of_edge(edge: int) -> set[int]:
    return {f for f, (corners, _) in enumerate(FACES) if set(EDGES[edge]) <= set(corners)}


def _rotate_to_safe_apex(loop: list[int]) -> list[int]:
    """Start the fan at a vertex whose diagonals never join two points of one cube face.

    Such a diagonal lies in the face, where the neighbouring cube may draw the same one: the
    edge would then carry four triangles. Loops of three need no diagonal.
    """
    size = len(loop)
    for shift in range(size):
        apex = loop[shift]
        others = [loop[(shift + i) % size] for i in range(2, size - 1)]
        if all(not (_faces_of_edge(apex) & _faces_of_edge(other)) for other in others):
            return loop[shift:] + loop[:shift]
    return loop


def _midpoint(edge: int) -> np.ndarray:
    a, b = EDGES[edge]
    return (CORNERS[a] + CORNERS[b]) / 2.0


@lru_cache(maxsize=1)
def case_table() -> np.ndarray:
    """(256, max_triangles, 3) int64 edge indices per case, padded with -1."""
    cases: list[list[tuple[int, int, int]]] = []
    for case in range(256):
        following: dict[int, int] = {}
        for corners, normal in FACES:
            for start, end in _face_segments(case, corners, np.asarray(normal, float)):
                following[start] = end
        triangles = []
        while following:
            start = next(iter(following))
            loop = [start]
            while following[loop[-1]] != start:
                loop.append(following[loop[-1]])
            for edge in loop:
                following.pop(edge)
            loop.reverse()  # loops run with the inside on their left: reverse for outward normals
            loop = _rotate_to_safe_apex(loop)
            triangles += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
        cases.append(triangles)
    width = max(len(triangles) for triangles in cases)
    table = np.full((256, width, 3), -1, dtype=np.int64)
    for case, triangles in enumerate(cases):
        if triangles:
            table[case, : len(triangles)] = triangles
    return table


def marching_cubes_torch(level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero level set of ``level`` (r0, r1, r2), object where level > 0.

    returns vertices (n, 3) float32 in index coordinates (like scikit-image's) and
    faces (m, 3) int64 wound counter-clockwise seen from outside; both on level's device.
    """
    device = level.device
    level = level.float()
    inside = level > 0
    shape = tuple(s - 1 for s in level.shape)
    cases = torch.zeros(shape, dtype=torch.int64, device=device)
    for corner, (dx, dy, dz) in enumerate(CORNERS.tolist()):
        block = inside[dx : dx + shape[0], dy : dy + shape[1], dz : dz + shape[2]]
        cases |= block.long() << corner
    active = torch.nonzero((cases > 0) & (cases < 255))  # (k, 3) cell origins
    if active.shape[0] == 0:
        empty = torch.zeros((0, 3), device=device)
        return empty, torch.zeros((0, 3), dtype=torch.int64, device=device)
    table = torch.from_numpy(case_table()).to(device)
    triangles = table[cases[active[:, 0], active[:, 1], active[:, 2]]]  # (k, t, 3)
    valid = triangles[:, :, 0] >= 0
    cell = active[:, None, None, :].expand(-1, triangles.shape[1], 3, 3)[valid]  # (f, 3, 3)
    edges = triangles[valid]  # (f, 3)
    edge_corners = torch.from_numpy(EDGES).to(device)
    corner_offsets = torch.from_numpy(CORNERS).to(device)
    start = cell + corner_offsets[edge_corners[edges, 0]]
    end = cell + corner_offsets[edge_corners[edges, 1]]
    low = torch.minimum(start, end)
    axis = (end - start).abs().argmax(dim=-1)
    # One vertex per grid edge: key it by its low grid point and its axis.
    key = ((low[..., 0] * level.shape[1] + low[..., 1]) * level.shape[2] + low[..., 2]) * 3 + axis
    unique, inverse = torch.unique(key.reshape(-1), return_inverse=True)
    axis_u = unique % 3
    flat = unique // 3
    z = flat % level.shape[2]
    y = (flat // level.shape[2]) % level.shape[1]
    x = flat // (level.shape[2] * level.shape[1])
    low_u = torch.stack([x, y, z], dim=-1)
    high_u = low_u + torch.nn.functional.one_hot(axis_u, 3)
    value_low = level[low_u[:, 0], low_u[:, 1], low_u[:, 2]]
    value_high = level[high_u[:, 0], high_u[:, 1], high_u[:, 2]]
    t = value_low / (value_low - value_high)
    vertices = low_u.float() + t[:, None] * (high_u - low_u).float()
    return vertices, inverse.reshape(-1, 3)
