"""Mesh extraction by deformable marching tetrahedra (DMTet-style), as SF3D does.

The density field is sampled at the vertices of a tetrahedral grid filling the bounding box;
the network also predicts a small offset per grid vertex (scaled by ``1 / resolution`` through
``tanh``), and each tetrahedron the level set crosses yields one or two triangles whose vertices
are the linear zero crossings along its edges.

The grid: upstream ships a precomputed 160-"resolution" tet file that is not part of the
weights repo, so we build our own regular grid (each cube cut into 6 tetrahedra around its main
diagonal, every tet positively oriented) with ``resolution // 2`` cells per axis, which matches
the deformation scale's "half tet size is about 1/resolution". A grid file in upstream's .npz
format (``vertices``, ``indices``) can be used instead (``TetGrid.from_npz``).

Triangle tables are derived here from the edge crossings: a quad is split along the first of
the edge pairs (1, 4), (2, 3), (0, 5) it contains (the split upstream's table uses), and every
triangle is wound to face from the occupied (density above threshold) side to the empty side.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

TET_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
QUAD_SPLITS = ((1, 4), (2, 3), (0, 5))
_REFERENCE_TET = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)


def _orient(triangle: list[int], outward: np.ndarray) -> list[int]:
    mid = {e: _REFERENCE_TET[list(TET_EDGES[e])].mean(axis=0) for e in triangle}
    p0, p1, p2 = (mid[e] for e in triangle)
    normal = np.cross(p1 - p0, p2 - p0)
    return triangle if normal @ outward > 0 else [triangle[0], triangle[2], triangle[1]]


def triangle_tables() -> tuple[np.ndarray, np.ndarray]:
    """(16, 6) edge indices of each case's triangles (-1 pad) and (16,) triangle counts.

    Case bit v is set when tet vertex v is occupied; tables assume positively oriented tets.
    """
    table = np.full((16, 6), -1, dtype=np.int64)
    counts = np.zeros(16, dtype=np.int64)
    for case in range(16):
        occupied = [(case >> v) & 1 for v in range(4)]
        crossing = [e for e, (a, b) in enumerate(TET_EDGES) if occupied[a] != occupied[b]]
        if not crossing:
            continue
        inside = _REFERENCE_TET[[v for v in range(4) if occupied[v]]].mean(axis=0)
        outside = _REFERENCE_TET[[v for v in range(4) if not occupied[v]]].mean(axis=0)
        outward = outside - inside
        if len(crossing) == 3:
            triangles = [crossing]
        else:
            diagonal = next(s for s in QUAD_SPLITS if set(s) <= set(crossing))
            rest = [e for e in crossing if e not in diagonal]
            triangles = [[diagonal[0], rest[0], diagonal[1]], [diagonal[0], diagonal[1], rest[1]]]
        flat = [e for tri in triangles for e in _orient(tri, outward)]
        table[case, : len(flat)] = flat
        counts[case] = len(triangles)
    return table, counts


@dataclass(frozen=True)
class TetGrid:
    """vertices : (V, 3) float32 in [0, 1]^3; tets : (T, 4) int64, positively oriented."""

    vertices: np.ndarray
    tets: np.ndarray

    @classmethod
    def regular(cls, cells: int) -> TetGrid:
        """``cells``^3 cubes, 6 tets each (Kuhn split along the (0,0,0)-(1,1,1) diagonal)."""
        if cells < 1:
            raise ValueError(f"a tet grid needs at least 1 cell per axis, got {cells}")
        axis = np.arange(cells + 1, dtype=np.float32) / cells
        grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
        side = cells + 1
        ijk = np.stack(
            np.meshgrid(*(np.arange(cells),) * 3, indexing="ij"), axis=-1
        ).reshape(-1, 3)
        tets = []
        for order in itertools.permutations(range(3)):
            corners = [np.zeros(3, dtype=np.int64)]
            for axis_index in order:
                step = corners[-1].copy()
                step[axis_index] += 1
                corners.append(step)
            offsets = np.stack(corners)  # (4, 3)
            volume = np.linalg.det((offsets[1:] - offsets[0]).astype(np.float64))
            if volume < 0:
                offsets = offsets[[0, 1, 3, 2]]
            idx = ijk[:, None, :] + offsets[None]  # (cubes, 4, 3)
            tets.append((idx[..., 0] * side + idx[..., 1]) * side + idx[..., 2])
        return cls(grid.astype(np.float32), np.concatenate(tets, axis=0).astype(np.int64))

    @classmethod
    def from_npz(cls, path: Path) -> TetGrid:
        """A grid file in upstream's layout (``vertices`` in [0, 1]^3, ``indices`` (T, 4), e.g.
        stable-fast-3d's ``load/tets/160_tets.npz``); tets of negative volume are turned over
        (two corners swapped), as the triangle tables expect positive ones."""
        with np.load(path) as data:
            vertices = data["vertices"].astype(np.float32)
            tets = data["indices"].astype(np.int64)
        corners = vertices[tets].astype(np.float64)
        negative = np.linalg.det(corners[:, 1:] - corners[:, :1]) < 0
        tets[negative] = tets[negative][:, [0, 1, 3, 2]]
        return cls(vertices, tets)


class MarchingTetrahedra:
    """Extracts the level set ``sdf > 0`` (occupied) of a deformed tet grid, on any device."""

    def __init__(self, grid: TetGrid, resolution: int, device: torch.device | str = "cpu") -> None:
        self.resolution = resolution
        self.vertices = torch.from_numpy(grid.vertices).to(device)
        self.tets = torch.from_numpy(grid.tets).to(device)
        table, counts = triangle_tables()
        self.table = torch.from_numpy(table).to(device)
        self.counts = torch.from_numpy(counts).to(device)
        self.edges = torch.tensor(TET_EDGES, dtype=torch.long, device=device)

    def deformed_vertices(self, offsets: torch.Tensor | None) -> torch.Tensor:
        """Grid vertices moved by ``tanh(offset) / resolution`` (grid units, [0, 1] box)."""
        if offsets is None:
            return self.vertices
        return self.vertices + torch.tanh(offsets) / self.resolution

    @torch.no_grad()
    def __call__(
        self, sdf: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """sdf (V,), offsets (V, 3) | None -> vertices (n, 3) in grid units, faces (m, 3).

        Faces are wound toward the empty side (outward for a solid); vertices are ordered by
        their sorted grid edge, faces one-triangle tets first, as upstream orders them.
        """
        positions = self.deformed_vertices(offsets)
        occupied = sdf.reshape(-1) > 0
        tet_occupied = occupied[self.tets]
        filled = tet_occupied.sum(dim=1)
        valid = (filled > 0) & (filled < 4)
        tets = self.tets[valid]
        edges = tets[:, self.edges].reshape(-1, 2)
        edges = torch.sort(edges, dim=1).values
        unique, inverse = torch.unique(edges, dim=0, return_inverse=True)
        crossing = occupied[unique[:, 0]] != occupied[unique[:, 1]]
        mapping = torch.full((unique.shape[0],), -1, dtype=torch.long, device=sdf.device)
        mapping[crossing] = torch.arange(int(crossing.sum()), device=sdf.device)
        tet_edge_vertex = mapping[inverse].reshape(-1, 6)
        a, b = unique[crossing, 0], unique[crossing, 1]
        sdf_flat = sdf.reshape(-1)
        sa, sb = sdf_flat[a, None], sdf_flat[b, None]
        denominator = sa - sb
        vertices = positions[a] * (-sb / denominator) + positions[b] * (sa / denominator)
        weights = torch.tensor([1, 2, 4, 8], dtype=torch.long, device=sdf.device)
        cases = (tet_occupied[valid].long() * weights).sum(dim=1)
        triangles = self.counts[cases]
        single, double = triangles == 1, triangles == 2
        one = torch.gather(tet_edge_vertex[single], 1, self.table[cases[single], :3])
        two = torch.gather(tet_edge_vertex[double], 1, self.table[cases[double], :6])
        faces = torch.cat([one.reshape(-1, 3), two.reshape(-1, 3)], dim=0)
        return vertices, faces
