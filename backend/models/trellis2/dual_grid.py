"""O-Voxel's flexible dual grid -> triangle mesh, in PyTorch with sorted-key hashing.

Upstream: ``o-voxel/o_voxel/convert/flexible_dual_grid.py:flexible_dual_grid_to_mesh``
(inference branch), which finds voxels in a CUDA hashmap. Here voxel keys
``(x * S + y) * S + z`` are sorted once and looked up with ``searchsorted``, on any device.

Semantics kept:

- each voxel owns one dual vertex at ``(coord + offset) * voxel_size + aabb_min`` (offset in
  voxel units, within [-margin, 1 + margin]);
- a voxel flagged on axis a owns the quad of the four voxels around its primal edge along a:
  offsets (0,0,0), (0,0,1), (0,1,1), (0,1,0) for x; (0,0,0), (1,0,0), (1,0,1), (0,0,1) for y;
  (0,0,0), (0,1,0), (1,1,0), (1,0,0) for z; a quad with a missing voxel is dropped;
- a quad (q0, q1, q2, q3) splits along 0-2 (triangles 0 1 2, 0 2 3) when
  ``w[q0] w[q2] > w[q1] w[q3]`` (the decoder's split weights), else along 1-3 (0 1 3, 3 1 2).

Upstream then fills small holes with CuMesh; we leave the mesh as it is (the geometry
pipeline's clean step repairs and re-winds it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EDGE_NEIGHBOURS = (
    ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0)),
    ((0, 0, 0), (1, 0, 0), (1, 0, 1), (0, 0, 1)),
    ((0, 0, 0), (0, 1, 0), (1, 1, 0), (1, 0, 0)),
)
SPLIT_02 = (0, 1, 2, 0, 2, 3)
SPLIT_13 = (0, 1, 3, 3, 1, 2)


@dataclass
class DualGridMesh:
    """vertices (V, 3) float32 in the aabb (TRELLIS frame, +Z up), faces (F, 3) int64."""

    vertices: Tensor
    faces: Tensor


class SortedVoxels:
    """Voxel positions (N, 3) as sorted integer keys; ``find`` maps positions to rows or -1."""

    def __init__(self, coords: Tensor, side: int) -> None:
        self.side = side + 2  # neighbours reach one past the grid on either side
        keys = self._keys(coords.long())
        self.sorted_keys, self.order = torch.sort(keys)

    def _keys(self, positions: Tensor) -> Tensor:
        shifted = positions + 1
        return (shifted[..., 0] * self.side + shifted[..., 1]) * self.side + shifted[..., 2]

    def find(self, positions: Tensor) -> Tensor:
        """(..., 3) positions -> (...) row indices, -1 where no voxel is."""
        keys = self._keys(positions.long())
        if not len(self.sorted_keys):
            return torch.full_like(keys, -1)
        slot = torch.searchsorted(self.sorted_keys, keys).clamp(max=len(self.sorted_keys) - 1)
        found = self.sorted_keys[slot] == keys
        return torch.where(found, self.order[slot], torch.full_like(keys, -1))


def dual_grid_to_mesh(
    coords: Tensor,
    dual_vertices: Tensor,
    intersected: Tensor,
    split_weight: Tensor,
    resolution: int,
    aabb_min: float = -0.5,
    aabb_max: float = 0.5,
) -> DualGridMesh:
    """coords (N, 3) int, dual_vertices (N, 3), intersected (N, 3) bool, split_weight (N, 1)
    -> the mesh of a cube grid of ``resolution`` cells spanning [aabb_min, aabb_max]^3."""
    coords = coords.long()
    voxel_size = (aabb_max - aabb_min) / resolution
    vertices = (coords.float() + dual_vertices.float()) * voxel_size + aabb_min
    offsets = torch.tensor(EDGE_NEIGHBOURS, dtype=torch.long, device=coords.device)
    around = coords[:, None, None, :] + offsets[None]  # (N, 3 axes, 4, 3)
    quads_at = around[intersected]  # (M, 4, 3)
    quads = SortedVoxels(coords, resolution).find(quads_at)
    quads = quads[(quads >= 0).all(dim=1)]
    weight = split_weight.reshape(-1).float()[quads]
    along_02 = weight[:, 0] * weight[:, 2] > weight[:, 1] * weight[:, 3]
    split_02 = torch.tensor(SPLIT_02, device=quads.device)
    split_13 = torch.tensor(SPLIT_13, device=quads.device)
    faces = torch.where(along_02[:, None], quads[:, split_02], quads[:, split_13])
    return DualGridMesh(vertices, faces.reshape(-1, 3))
