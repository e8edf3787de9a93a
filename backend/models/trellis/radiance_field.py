"""TRELLIS's decoded radiance field (a Strivec) as a colour field the bake can query.

The RF decoder gives each occupied voxel of the 64^3 grid a rank-``R`` tri-vector field
(``slat_decoders.RadianceFieldParameters``): per rank, three ``dim``-long vectors (x, y, z), a
density and an SH DC colour. Upstream evaluates it only in CUDA (diffoctreerast's
``sample_trivec``, research 1.6); this is that evaluation in numpy, for colour only:

- the point's voxel and its local position ``u`` in [0, 1]^3 inside it;
- per axis ``q = u * dim - 0.5``, ``i = clamp(trunc(q), 0, dim - 2)``, ``w = q - i`` (not
  clamped: values extrapolate near the faces, as upstream's do), ``lerp(vec[i], vec[i+1], w)``;
- ``v_r`` = the product of the three axes' values for rank ``r``;
- colour = ``sigmoid(sum_r C0 * features_dc[r] * v_r)``.

A surface point in no occupied voxel (the mesh is extracted at 4x the voxel resolution, so its
surface can leave the voxels near their faces) takes the nearest occupied voxel, with ``u``
clamped into it. Points come in the backend's frame and are turned to TRELLIS's like
colour_field.py does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.geometry.raw_asset import PointField
from backend.models.trellis.mesh_extraction import TRELLIS_TO_BACKEND

SH_C0 = 0.28209479177387814


@dataclass(frozen=True)
class StrivecColour:
    """One sample's Strivec colour fields on the CPU (numpy).

    voxels : (n, 3) int64 voxel coordinates in [0, resolution); voxel_ids (n,) sorted keys and
    order (n,) the rows they come from; trivec (n, R, 3, dim) float32; features_dc (n, R, 3)
    """

    resolution: int
    voxels: np.ndarray
    voxel_ids: np.ndarray
    order: np.ndarray
    trivec: np.ndarray
    features_dc: np.ndarray

    @classmethod
    def from_parameters(cls, rf) -> StrivecColour:
        """From ``slat_decoders.RadianceFieldParameters`` (torch tensors on any device)."""
        resolution = 2**rf.depth
        voxels = np.floor(rf.position.detach().float().cpu().numpy() * resolution).astype(np.int64)
        ids = _keys(voxels, resolution)
        order = np.argsort(ids, kind="stable")
        return cls(
            resolution,
            voxels,
            ids[order],
            order,
            rf.trivec.detach().float().cpu().numpy(),
            rf.features_dc.detach().float().cpu().numpy()[:, :, 0, :],
        )


def _keys(voxels: np.ndarray, resolution: int) -> np.ndarray:
    return (voxels[:, 0] * resolution + voxels[:, 1]) * resolution + voxels[:, 2]


def sample_colour(field: StrivecColour, points: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of the field at points (k, 3) in TRELLIS's frame -> (k, 3) float32."""
    if len(field.voxels) == 0:
        return np.full((len(points), 3), 0.5, np.float32)
    res = field.resolution
    grid = (np.asarray(points, np.float64) + 0.5) * res
    voxel = np.floor(grid).astype(np.int64)
    inside = np.all((voxel >= 0) & (voxel < res), axis=1)
    ids = _keys(np.clip(voxel, 0, res - 1), res)
    found = np.searchsorted(field.voxel_ids, ids).clip(max=len(field.voxel_ids) - 1)
    hit = inside & (field.voxel_ids[found] == ids)
    rows = field.order[found]
    if not hit.all():
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(field.voxels + 0.5).query(grid[~hit])
        rows[~hit] = nearest
    local = grid - field.voxels[rows]
    local[~hit] = np.clip(local[~hit], 0.0, 1.0)
    trivec = field.trivec[rows]  # (k, R, 3, dim)
    dim = trivec.shape[-1]
    q = local * dim - 0.5  # (k, 3)
    index = np.clip(np.trunc(q), 0, dim - 2).astype(np.int64)
    weight = q - index
    low = np.take_along_axis(trivec, index[:, None, :, None], axis=3)[..., 0]
    high = np.take_along_axis(trivec, index[:, None, :, None] + 1, axis=3)[..., 0]
    values = low + (high - low) * weight[:, None, :]  # (k, R, 3)
    per_rank = values.prod(axis=2)  # (k, R)
    logits = SH_C0 * np.einsum("kr,krc->kc", per_rank, field.features_dc[rows])
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def radiance_field_colour_field(field: StrivecColour) -> PointField:
    """A RawAsset colour field: points (k, 3) in the backend's frame -> (k, 3) RGB."""
    to_trellis = np.array(TRELLIS_TO_BACKEND)

    def colour(points: np.ndarray) -> np.ndarray:
        return sample_colour(field, np.asarray(points, np.float64) @ to_trellis)

    return colour
