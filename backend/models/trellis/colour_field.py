"""The mesh decoder's colour as a field the bake can query at any surface point.

The mesh decoder gives each voxel of its output grid 8 corner colours (upstream's
``SparseFeatures2Mesh``: 6 channels per corner, RGB then a normal map); averaged onto the grid
vertices they share (a true mean, as for the signed distances) and passed through a sigmoid,
they are the colours FlexiCubes interpolates onto the mesh's vertices. The bake asks for colour
at texel points of the decimated surface instead, so :func:`grid_colours` keeps the vertex grid's
RGB and :func:`colour_field` evaluates it there trilinearly: the decoded colour at the point,
not a vertex colour smeared over a decimated triangle.

Grid vertex ``(x, y, z)`` of a ``res``^3 grid sits at ``(x, y, z) / res - 0.5`` in TRELLIS's
frame (+Z up), its id is ``(x * (res + 1) + y) * (res + 1) + z`` (``flexicubes.grid_ids``). A
query corner no voxel wrote drops out of the interpolation (the others are renormalised); a
point with none of its 8 corners written takes the nearest written vertex's colour. The grid is
kept as numpy arrays; the field's ``torch_field`` form (what the bake calls when a job runs on a
GPU) evaluates the same interpolation there, keeping a device copy of the grid while the field
lives (one job's raw output).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from backend.geometry import grid_knn
from backend.geometry.raw_asset import PointField
from backend.models.trellis import flexicubes
from backend.models.trellis.mesh_extraction import (
    COLOUR_CHANNELS,
    COLOUR_SIZE,
    TRELLIS_TO_BACKEND,
    vertex_attributes,
)

# The 8 corners of a cell as (dx, dy, dz), x slowest (any fixed order works for trilinear).
_CORNERS = np.array([[dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])


@dataclass(frozen=True)
class GridColours:
    """RGB of the written grid vertices of a ``resolution``^3 grid.

    vertex_ids : (m,) int64 ascending (flexicubes.grid_ids)
    colours : (m, 3) float32 in [0, 1], sRGB as the decoder emits it
    """

    resolution: int
    vertex_ids: np.ndarray
    colours: np.ndarray


def grid_colours(coords: torch.Tensor, feats: torch.Tensor, resolution: int) -> GridColours:
    """The mesh decoder's output for one batch element -> its grid vertices' RGB.

    coords : (n, 4) int [batch, x, y, z] of one batch element, x, y, z in [0, resolution)
    feats : (n, 101) float, the decoder's channels (colour: 8 corners x 6 from channel 53)
    """
    voxel_ids = flexicubes.grid_ids(coords[:, 1:], resolution)
    corners = feats[:, COLOUR_CHANNELS].float().reshape(len(feats), 8, COLOUR_SIZE)[:, :, :3]
    vertex_ids, values = vertex_attributes(voxel_ids, corners, resolution)
    return GridColours(
        resolution,
        vertex_ids.cpu().numpy().astype(np.int64),
        torch.sigmoid(values).cpu().numpy().astype(np.float32),
    )


def sample_grid_colours(grid: GridColours, points: np.ndarray) -> np.ndarray:
    """Trilinear RGB of ``grid`` at points (k, 3) in TRELLIS's frame -> (k, 3) float32: the
    torch form on the CPU (the grid's arrays are shared, not copied)."""
    return sample_grid_colours_torch(
        grid,
        torch.as_tensor(grid.vertex_ids),
        torch.as_tensor(grid.colours, dtype=torch.float64),
        torch.as_tensor(np.asarray(points), dtype=torch.float64),
    ).numpy()


def _nearest_colours(grid: GridColours, points: np.ndarray) -> np.ndarray:
    """RGB (k, 3) of the written grid vertex nearest each point (k, 3), through grid_knn's
    bucket grid: a KD-tree over every written vertex (millions for a full-size decode) took
    longer to build than the whole rest of the colour bake, for a handful of queries."""
    res, base = grid.resolution, grid.resolution + 1
    ids = grid.vertex_ids
    positions = np.stack([ids // (base * base), (ids // base) % base, ids % base], axis=1)
    nearest = grid_knn.k_nearest(positions / res - 0.5, points, 1)[:, 0]
    return grid.colours[nearest]


def colour_field(grid: GridColours) -> PointField:
    """A RawAsset colour field: points (k, 3) in the backend's frame -> (k, 3) RGB in [0, 1]."""
    # Backend = R @ TRELLIS with R orthonormal, so TRELLIS = R^T @ backend: row vectors @ R.
    to_trellis = np.array(TRELLIS_TO_BACKEND)

    def field(points: np.ndarray) -> np.ndarray:
        return sample_grid_colours(grid, np.asarray(points, np.float64) @ to_trellis)

    on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def torch_field(points: torch.Tensor) -> torch.Tensor:
        if points.device not in on_device:  # the grid goes to the device once per field
            on_device[points.device] = (
                torch.as_tensor(grid.vertex_ids, device=points.device),
                torch.as_tensor(grid.colours, device=points.device, dtype=torch.float64),
                torch.as_tensor(to_trellis, device=points.device, dtype=torch.float64),
            )
        ids, colours, rotation = on_device[points.device]
        return sample_grid_colours_torch(grid, ids, colours, points.double() @ rotation)

    field.torch_field = torch_field  # type: ignore[attr-defined]
    return field


def sample_grid_colours_torch(
    grid: GridColours, ids: torch.Tensor, colours: torch.Tensor, points: torch.Tensor
) -> torch.Tensor:
    """Trilinear RGB of ``grid`` at points (k, 3) in TRELLIS's frame, float64, on the points'
    device -> (k, 3) float32; ``ids`` and ``colours`` are the grid's arrays there. A query corner
    no voxel wrote drops out (the others renormalised); a point with none written takes the
    nearest written vertex (on the host: one wait, whether any point has none)."""
    if len(ids) == 0:
        return torch.full((len(points), 3), 0.5, dtype=torch.float32, device=points.device)
    res, base = grid.resolution, grid.resolution + 1
    offsets = torch.as_tensor(_CORNERS, device=points.device)
    cell_position = (points + 0.5) * res
    cell = cell_position.floor().clamp(0, res - 1).long()
    fraction = (cell_position - cell).clamp(0.0, 1.0)
    corners = cell[:, None, :] + offsets[None]
    corner_ids = (corners[..., 0] * base + corners[..., 1]) * base + corners[..., 2]
    found = torch.searchsorted(ids, corner_ids).clamp(max=len(ids) - 1)
    present = ids[found] == corner_ids
    weights = torch.where(offsets[None] == 1, fraction[:, None, :], 1.0 - fraction[:, None, :])
    weights = torch.where(present, weights.prod(dim=2), 0.0)
    lonely = weights.sum(dim=1) <= 1e-12
    weights = torch.where(lonely[:, None], present.double(), weights)
    total = weights.sum(dim=1)
    out = torch.einsum("kc,kcd->kd", weights, colours[found]) / total.clamp(min=1e-12)[:, None]
    missing = total <= 1e-12
    if bool(missing.any()):
        far = points[missing].cpu().numpy()
        out[missing] = torch.as_tensor(_nearest_colours(grid, far), device=out.device).double()
    return out.float()
