"""TRELLIS's mesh decoder output -> a vertex-coloured triangle mesh (``SparseFeatures2Mesh``).

The mesh decoder ends with 101 channels per active voxel of a ``res``^3 grid (res 256 = 4 x the
64^3 latent grid). Upstream (``trellis/representations/mesh/cube2mesh.py``, TRELLIS @6b0d647)
reads them as, in this order: sdf (8 corners x 1), deform (8 x 3), FlexiCubes weights (21 =
beta 12 | alpha 8 | gamma 1), colour (8 x 6 = RGB | normal map). Then:

1. ``sdf += -1 / res``;
2. the per-voxel corner values (sdf, deform, colour) are averaged onto the unique grid vertices
   they land on (a true mean: ``scatter_reduce('mean', include_self=False)``);
3. vertex ``v`` (integer grid point) moves to ``v / res - 0.5 + (1 - 1e-8) / (2 res) tanh(deform)``;
4. FlexiCubes (flexicubes.py) with colours ``sigmoid(colour)`` interpolated like the vertices.

Upstream scatters everything into dense 257^3 / 256^3 grids (sdf +1, the rest 0 where no voxel
writes); we pass the active vertices and voxels to the sparse FlexiCubes, which applies the same
defaults, so memory follows the active voxels. Result: vertices in [-0.5, 0.5]^3 in TRELLIS's
frame (+Z up), faces wound counter-clockwise seen from outside, colours (V, 6) in [0, 1].
Corner values are summed in the voxels' given order, as upstream does, so that on the CPU the
result is bit-identical to upstream's (checked outside the repository against upstream's
``SparseFeatures2Mesh`` on random features at res 8 and 16 and on 1.26 M voxels at res 256).

Frame. :func:`to_backend_frame` is the one place where TRELLIS's frame becomes the backend's (+Y
up, subject facing +Z): (x, y, z) -> (x, z, -y), the rotation upstream's own GLB export applies
(``postprocessing_utils.to_glb``), a proper rotation, so the winding is kept. TRELLIS's assets
face -Y in its +Z-up frame (Blender's convention), hence +Z after the turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backend.models.trellis import flexicubes
from shared_protocol.errors import ErrorCode, ProtocolError

SDF_CHANNELS = slice(0, 8)
DEFORM_CHANNELS = slice(8, 32)
WEIGHT_CHANNELS = slice(32, 53)
COLOUR_CHANNELS = slice(53, 101)
FEATURE_CHANNELS = 101
COLOUR_SIZE = 6  # RGB | normal map
# Rows pick TRELLIS axes for the backend's x, y, z: (x, y, z) -> (x, z, -y).
TRELLIS_TO_BACKEND = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))


@dataclass(frozen=True)
class TrellisMesh:
    """vertices (V, 3) float32 in [-0.5, 0.5]^3 (TRELLIS frame, +Z up), faces (F, 3) int64
    (counter-clockwise from outside), colours (V, 6) float32 in [0, 1]: RGB | normal map."""

    vertices: torch.Tensor
    faces: torch.Tensor
    colours: torch.Tensor


def _check(coords: torch.Tensor, feats: torch.Tensor, resolution: int) -> None:
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must be (N, 4) [batch, x, y, z], got {tuple(coords.shape)}")
    if feats.shape != (coords.shape[0], FEATURE_CHANNELS):
        raise ValueError(
            f"feats must be ({coords.shape[0]}, {FEATURE_CHANNELS}), got {tuple(feats.shape)}"
        )
    if coords.dtype.is_floating_point or coords.dtype == torch.bool:
        raise ValueError(f"coords must be integers, got {coords.dtype}")
    if coords.shape[0] and bool((coords[:, 0] != coords[0, 0]).any()):
        raise ValueError("coords hold several batch elements; extract one at a time")
    xyz = coords[:, 1:]
    if coords.shape[0] and bool(((xyz < 0) | (xyz >= resolution)).any()):
        raise ValueError(f"voxel coordinates must lie in [0, {resolution})")


def _no_surface(reason: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.MODEL_FAILED,
        f"TRELLIS's mesh decoder produced no surface: {reason}",
        hint="Try another seed or image (cut out cleanly, subject centred), or more sampling "
        "steps.",
    )


def vertex_attributes(
    voxel_ids: torch.Tensor, corner_values: torch.Tensor, resolution: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average per-voxel corner values onto the unique grid vertices.

    voxel_ids : (N,) int64 global ids of the voxels' corner 0 (flexicubes.grid_ids)
    corner_values : (N, 8, C) float, corners in FlexiCubes' order (x fastest)
    returns vertex ids (M,) ascending and their mean values (M, C)
    """
    corner_offsets = flexicubes.grid_ids(_corners(voxel_ids.device), resolution)
    vertex_ids, inverse = torch.unique(voxel_ids[:, None] + corner_offsets, return_inverse=True)
    inverse = inverse.reshape(-1)
    channels = corner_values.shape[2]
    sums = corner_values.new_zeros(vertex_ids.numel(), channels)
    sums.index_add_(0, inverse, corner_values.reshape(-1, channels))
    counts = torch.bincount(inverse, minlength=vertex_ids.numel()).to(corner_values.dtype)
    return vertex_ids, sums / counts[:, None]


def _corners(device: torch.device) -> torch.Tensor:
    return torch.tensor(flexicubes.tables.CORNERS, dtype=torch.long, device=device)


def features_to_mesh(coords: torch.Tensor, feats: torch.Tensor, resolution: int) -> TrellisMesh:
    """The mesh decoder's sparse output -> a mesh (module docstring; upstream's
    ``SparseFeatures2Mesh(res=resolution, use_color=True)`` at inference).

    coords : (N, 4) int [batch, x, y, z], one batch element, x, y, z in [0, resolution)
    feats : (N, 101) float (computed in float32)
    raises ProtocolError(MODEL_FAILED) when there is no voxel or no surface
    """
    _check(coords, feats, resolution)
    if coords.shape[0] == 0:
        raise _no_surface("the structure has no occupied voxel")
    feats = feats.float()
    count = feats.shape[0]
    voxel_ids = flexicubes.grid_ids(coords[:, 1:], resolution)
    sorted_ids, order = torch.sort(voxel_ids)
    if bool((sorted_ids[1:] == sorted_ids[:-1]).any()):
        raise ValueError("coords hold the same voxel twice")

    sdf = feats[:, SDF_CHANNELS] + (-1.0 / resolution)
    corner_values = torch.cat(
        [
            sdf.reshape(count, 8, 1),
            feats[:, DEFORM_CHANNELS].reshape(count, 8, 3),
            feats[:, COLOUR_CHANNELS].reshape(count, 8, COLOUR_SIZE),
        ],
        dim=2,
    )
    # In the voxels' own order: the sums then add up in upstream's order, bit for bit.
    vertex_ids, values = vertex_attributes(voxel_ids, corner_values, resolution)
    rest = flexicubes.grid_points(vertex_ids, resolution)
    positions = rest / resolution - 0.5 + (1 - 1e-8) / (resolution * 2) * torch.tanh(values[:, 1:4])
    mesh = flexicubes.extract(
        resolution,
        vertex_ids,
        positions,
        values[:, 0],
        sorted_ids,
        feats[order, WEIGHT_CHANNELS],
        vertex_attributes=torch.sigmoid(values[:, 4:]),
        # Upstream's dense colour grid is 0 where no voxel writes, and sigmoid(0) = 0.5.
        attribute_default=0.5,
    )
    if mesh.faces.shape[0] == 0:
        raise _no_surface("the signed distances have no zero crossing inside the grid")
    assert mesh.attributes is not None
    return TrellisMesh(mesh.vertices, mesh.faces, mesh.attributes)


def to_backend_frame(points: torch.Tensor) -> torch.Tensor:
    """TRELLIS frame (+Z up, facing -Y) -> backend frame (+Y up, facing +Z); (n, 3) -> (n, 3)."""
    rotation = torch.tensor(TRELLIS_TO_BACKEND, dtype=points.dtype, device=points.device)
    return points @ rotation.T
