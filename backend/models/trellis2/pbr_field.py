"""TRELLIS.2's decoded PBR voxels as fields the geometry pipeline's bake queries.

The texture decoder gives every voxel of the ``resolution``^3 output grid six attributes in
[0, 1] (upstream's ``pbr_attr_layout``): base colour 0:3, metallic 3, roughness 4, alpha 5.
Voxel (x, y, z) is centred at ``((x, y, z) + 0.5) / resolution - 0.5`` in TRELLIS's frame. A
point takes the trilinear blend of the 8 voxel centres around it that are present (weights
renormalised, as upstream's sparse ``grid_sample_3d`` over the attribute volume), or the
nearest voxel's attributes when none is. Three fields come out, as RawAsset wants them: base
colour (k, 3), material (k, 2) = (roughness, metallic), alpha (k, 1). Arrays only (numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.geometry.raw_asset import PointField
from backend.models.trellis.mesh_extraction import TRELLIS_TO_BACKEND

BASE_COLOR, METALLIC, ROUGHNESS, ALPHA = slice(0, 3), slice(3, 4), slice(4, 5), slice(5, 6)
PBR_CHANNELS = 6
_CORNERS = np.array([[dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])


@dataclass(frozen=True)
class PbrVoxels:
    """keys (n,) int64 ascending ((x * R + y) * R + z), attributes (n, 6) float32 in [0, 1]."""

    resolution: int
    keys: np.ndarray
    attributes: np.ndarray

    @classmethod
    def from_voxels(cls, coords: np.ndarray, attributes: np.ndarray, resolution: int) -> PbrVoxels:
        """coords (n, 3) int in [0, resolution), attributes (n, 6) -> sorted by key."""
        coords = np.asarray(coords, np.int64)
        keys = (coords[:, 0] * resolution + coords[:, 1]) * resolution + coords[:, 2]
        order = np.argsort(keys, kind="stable")
        values = np.clip(np.asarray(attributes, np.float32)[order], 0.0, 1.0)
        return cls(resolution, keys[order], values)

    def sample(self, points: np.ndarray) -> np.ndarray:
        """Attributes (k, 6) at points (k, 3) in TRELLIS's frame."""
        if len(self.keys) == 0:
            return np.full((len(points), PBR_CHANNELS), 0.5, np.float32)
        res = self.resolution
        position = (np.asarray(points, np.float64) + 0.5) * res - 0.5
        base = np.floor(position).astype(np.int64)
        fraction = position - base
        corners = base[:, None, :] + _CORNERS[None]  # (k, 8, 3)
        inside = ((corners >= 0) & (corners < res)).all(axis=2)
        keys = (corners[..., 0] * res + corners[..., 1]) * res + corners[..., 2]
        slot = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        present = inside & (self.keys[slot] == keys)
        weights = np.prod(
            np.where(_CORNERS[None] == 1, fraction[:, None, :], 1.0 - fraction[:, None, :]),
            axis=2,
        )
        weights = np.where(present, weights, 0.0)
        total = weights.sum(axis=1)
        values = np.einsum("kc,kcd->kd", weights, self.attributes[slot])
        values /= np.maximum(total, 1e-12)[:, None]
        missing = total <= 1e-12
        if missing.any():
            values[missing] = self._nearest(np.asarray(points)[missing])
        return values.astype(np.float32)

    def _nearest(self, points: np.ndarray) -> np.ndarray:
        from scipy.spatial import cKDTree

        res = self.resolution
        cells = np.stack([self.keys // (res * res), self.keys // res % res, self.keys % res], 1)
        _, nearest = cKDTree((cells + 0.5) / res - 0.5).query(points)
        return self.attributes[nearest]

    def has_transparency(self, threshold: float = 0.99) -> bool:
        """Whether the model made any voxel see-through (alpha below ``threshold``)."""
        return bool(len(self.keys)) and float(self.attributes[:, ALPHA].min()) < threshold


def pbr_fields(
    voxels: PbrVoxels, normalised: tuple[np.ndarray, float] | None = None
) -> tuple[PointField, PointField, PointField]:
    """(colour, material, alpha) fields over points (k, 3) in the backend's frame.

    ``normalised`` (centre, scale): the voxels live in a frame where TRELLIS-frame points were
    moved by ``-centre`` then scaled (texturing an artist's mesh); None: the TRELLIS frame."""
    to_trellis = np.array(TRELLIS_TO_BACKEND)  # backend = R trellis: row vectors @ R

    def at(points: np.ndarray) -> np.ndarray:
        local = np.asarray(points, np.float64) @ to_trellis
        if normalised is not None:
            local = (local - normalised[0]) * normalised[1]
        return voxels.sample(local)

    def colour(points: np.ndarray) -> np.ndarray:
        return at(points)[:, BASE_COLOR]

    def material(points: np.ndarray) -> np.ndarray:
        values = at(points)
        return np.hstack([values[:, ROUGHNESS], values[:, METALLIC]])

    def alpha(points: np.ndarray) -> np.ndarray:
        return at(points)[:, ALPHA]

    return colour, material, alpha
