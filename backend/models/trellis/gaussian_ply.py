"""TRELLIS's decoded Gaussians as a standard 3D Gaussian Splatting ``.ply`` file (bytes).

The layout splat viewers and Blender splat add-ons read (3DGS's own): binary little-endian, one
``vertex`` element of float32 properties ``x y z nx ny nz f_dc_0 f_dc_1 f_dc_2 opacity scale_0
scale_1 scale_2 rot_0 rot_1 rot_2 rot_3`` (SH degree 0, so no ``f_rest_*``). Values are stored
before 3DGS's activations, as upstream's ``Gaussian.save_ply`` writes them (TRELLIS @6b0d647,
``trellis/representations/gaussian/gaussian_model.py``; the Gaussian's settings come from the
decoder's ``representation_config``):

- position: ``_xyz - 0.5`` (the aabb [-0.5]^3 + [1]^3), turned by ``T`` = [[1, 0, 0], [0, 0, -1],
  [0, 1, 0]], upstream's default: (x, y, z) -> (x, -z, y), so TRELLIS's +Z up becomes -Y (the
  +Y-down frame of 3DGS captures). The GLB's frame, (x, z, -y), is this turned half about X;
- normals: 0; ``f_dc``: the decoded SH DC coefficients (colour = 0.5 + C0 f_dc);
- opacity: the logit of the activated opacity, ``_opacity + logit(opacity_bias)`` (written
  directly: upstream's logit(sigmoid(x)) overflows to inf where the sigmoid rounds to 1);
- scale: log of the activated scale ``sqrt(act(_scaling + act^-1(scaling_bias))^2 + k^2)`` with
  ``act`` softplus (the release) or exp and ``k`` the 3D filter size;
- rotation: ``_rotation + (1, 0, 0, 0)`` as (w, x, y, z), normalised and composed with ``T``
  (q_T q, what upstream's matrix round trip gives), sign chosen so that w >= 0 (q and -q are one
  rotation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from backend.models.trellis.slat_decoders import GaussianParameters

SAVE_PLY_TRANSFORM = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
PROPERTIES = (
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip


@dataclass(frozen=True)
class GaussianActivations:
    """Upstream ``Gaussian``'s settings: biases added before the activations, the 3D filter."""

    scaling_bias: float
    opacity_bias: float
    min_kernel_size: float
    scaling_activation: str  # "softplus" (the release) or "exp"

    @classmethod
    def from_representation_config(cls, config: Mapping[str, Any]) -> GaussianActivations:
        return cls(
            scaling_bias=float(config["scaling_bias"]),
            opacity_bias=float(config["opacity_bias"]),
            min_kernel_size=float(config["3d_filter_kernel_size"]),
            scaling_activation=str(config["scaling_activation"]),
        )

    def scales(self, scaling: torch.Tensor) -> torch.Tensor:
        """Raw ``_scaling`` (n, 3) -> activated scales, the 3D filter included."""
        bias = torch.tensor(self.scaling_bias, dtype=torch.float32)
        if self.scaling_activation == "softplus":
            inverse_bias = bias + torch.log(-torch.expm1(-bias))
            scales = F.softplus(scaling + inverse_bias.to(scaling.device))
        elif self.scaling_activation == "exp":
            scales = torch.exp(scaling + torch.log(bias).to(scaling.device))
        else:
            raise ValueError(f"unknown scaling activation {self.scaling_activation!r}")
        return torch.sqrt(scales.square() + self.min_kernel_size**2)

    def opacity_logits(self, opacity: torch.Tensor) -> torch.Tensor:
        """Raw ``_opacity`` (n, 1) -> logit of the activated opacity."""
        return opacity + math.log(self.opacity_bias / (1 - self.opacity_bias))


def matrix_quaternion(matrix: np.ndarray) -> np.ndarray:
    """A 3x3 rotation matrix -> its unit quaternion (w, x, y, z) with w >= 0 (float64)."""
    m = np.asarray(matrix, np.float64)
    # The largest of 4w^2, 4x^2, 4y^2, 4z^2 gives the best-conditioned square root.
    diagonal = np.diag(m)
    squares = 1 + np.array([diagonal.sum(), *(2 * diagonal - diagonal.sum())])
    pick = int(np.argmax(squares))
    root = math.sqrt(squares[pick]) * 2  # 4 |q_pick|
    cross = {  # 4 q_i q_j from the off-diagonal sums and differences
        (0, 1): m[2, 1] - m[1, 2], (0, 2): m[0, 2] - m[2, 0], (0, 3): m[1, 0] - m[0, 1],
        (1, 2): m[0, 1] + m[1, 0], (1, 3): m[0, 2] + m[2, 0], (2, 3): m[1, 2] + m[2, 1],
    }  # fmt: skip
    q = np.empty(4)
    for i in range(4):
        q[i] = root / 4 if i == pick else cross[(min(i, pick), max(i, pick))] / root
    return q if q[0] >= 0 else -q


def quaternion_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of (..., 4) (w, x, y, z) quaternions: the rotation b then a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def splat_attributes(
    gaussians: GaussianParameters,
    activations: GaussianActivations,
    transform: tuple[tuple[float, ...], ...] = SAVE_PLY_TRANSFORM,
) -> np.ndarray:
    """One sample's raw Gaussians -> (n, 17) float32 rows in :data:`PROPERTIES` order."""
    xyz = gaussians.xyz.float() - 0.5
    rotation_matrix = torch.tensor(transform, dtype=torch.float32, device=xyz.device)
    positions = xyz @ rotation_matrix.T
    f_dc = gaussians.features_dc.float().transpose(1, 2).flatten(1)
    opacity = activations.opacity_logits(gaussians.opacity.float())
    scale = torch.log(activations.scales(gaussians.scaling.float()))
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], device=xyz.device)
    rotation = F.normalize(gaussians.rotation.float() + identity, dim=-1)
    turn = torch.tensor(matrix_quaternion(np.array(transform)), dtype=torch.float32)
    rotation = quaternion_product(turn.to(xyz.device).expand_as(rotation), rotation)
    rotation = torch.where(rotation[:, :1] < 0, -rotation, rotation)
    normals = torch.zeros_like(positions)
    rows = torch.cat([positions, normals, f_dc, opacity, scale, rotation], dim=1)
    return rows.cpu().numpy().astype(np.float32)


def ply_bytes(attributes: np.ndarray) -> bytes:
    """(n, 17) float32 rows -> a binary little-endian PLY with one ``vertex`` element."""
    attributes = np.ascontiguousarray(attributes, dtype="<f4")
    if attributes.ndim != 2 or attributes.shape[1] != len(PROPERTIES):
        raise ValueError(f"attributes must be (n, {len(PROPERTIES)}), got {attributes.shape}")
    header = [
        "ply",
        "format binary_little_endian 1.0",
        f"element vertex {len(attributes)}",
        *(f"property float {name}" for name in PROPERTIES),
        "end_header",
    ]
    return ("\n".join(header) + "\n").encode("ascii") + attributes.tobytes()


def ply_frame_to(rotation: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """(4, 4) map from the ply's coordinates to the frame ``rotation`` (3x3) turns TRELLIS's
    frame into (the backend's: ``mesh_extraction.TRELLIS_TO_BACKEND``)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(rotation) @ np.asarray(SAVE_PLY_TRANSFORM).T
    return matrix


def gaussians_ply(gaussians: GaussianParameters, representation_config: Mapping[str, Any]) -> bytes:
    """One sample's decoded Gaussians -> the bytes of a 3DGS ``.ply`` (module docstring)."""
    activations = GaussianActivations.from_representation_config(representation_config)
    return ply_bytes(splat_attributes(gaussians, activations))
