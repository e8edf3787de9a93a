"""gaussian_ply.py: TRELLIS's Gaussians as a 3DGS .ply, read back by a small reader written here.

The expected values restate upstream's ``Gaussian`` activations and ``save_ply`` (research 1.6)
with matrices instead of quaternion algebra, so a slip in the quaternion maths, the frame, an
activation or the property order shows up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.models.trellis.gaussian_ply import (
    GaussianActivations,
    gaussians_ply,
    matrix_quaternion,
)
from backend.models.trellis.slat_decoders import GaussianParameters

RELEASE = {"scaling_bias": 4e-3, "opacity_bias": 0.1, "3d_filter_kernel_size": 9e-4,
           "scaling_activation": "softplus"}  # fmt: skip
T = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # upstream's save_ply
PROPERTIES = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip


def read_ply(data: bytes) -> dict[str, np.ndarray]:
    """A minimal binary little-endian PLY reader: one vertex element of float properties."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    count = int(lines[2].removeprefix("element vertex "))
    names = [line.split()[2] for line in lines[3:-1]]
    assert all(line.startswith("property float ") for line in lines[3:-1])
    rows = np.frombuffer(data[end:], dtype="<f4")
    assert rows.size == count * len(names), "the body holds exactly count x properties floats"
    rows = rows.reshape(count, len(names))
    return {name: rows[:, i] for i, name in enumerate(names)}


def quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """(n, 4) (w, x, y, z) -> (n, 3, 3) rotation matrices of the normalised quaternions."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], 1)  # fmt: skip


def random_gaussians(count: int, seed: int = 0) -> GaussianParameters:
    g = torch.Generator().manual_seed(seed)
    return GaussianParameters(
        xyz=torch.rand(count, 3, generator=g),
        features_dc=torch.randn(count, 1, 3, generator=g),
        scaling=torch.randn(count, 3, generator=g) * 2,
        rotation=torch.randn(count, 4, generator=g) * 0.3,
        opacity=torch.randn(count, 1, generator=g) * 3,
    )


def test_the_ply_has_the_3dgs_layout_and_upstreams_stored_values() -> None:
    gaussians = random_gaussians(300)
    ply = read_ply(gaussians_ply(gaussians, RELEASE))
    assert list(ply) == PROPERTIES and len(ply["x"]) == 300
    xyz = np.stack([ply["x"], ply["y"], ply["z"]], 1)
    assert np.allclose(xyz, (gaussians.xyz.numpy() - 0.5) @ T.T, atol=1e-6)
    assert np.abs(xyz).max() <= 0.5 and all(np.all(ply[n] == 0) for n in ("nx", "ny", "nz"))
    f_dc = np.stack([ply[f"f_dc_{i}"] for i in range(3)], 1)
    assert np.allclose(f_dc, gaussians.features_dc.numpy()[:, 0], atol=1e-6)
    # opacity: logit of sigmoid(_opacity + logit(0.1))
    activated = 1 / (1 + np.exp(-(gaussians.opacity.numpy()[:, 0] + math.log(0.1 / 0.9))))
    assert np.allclose(ply["opacity"], np.log(activated / (1 - activated)), atol=1e-4)
    # scale: log sqrt(softplus(_scaling + softplus^-1(4e-3))^2 + (9e-4)^2)
    inverse_bias = math.log(math.expm1(4e-3))
    softplus = np.log1p(np.exp(gaussians.scaling.numpy().astype(np.float64) + inverse_bias))
    expected = np.log(np.sqrt(softplus**2 + 9e-4**2))
    scale = np.stack([ply[f"scale_{i}"] for i in range(3)], 1)
    assert np.allclose(scale, expected, atol=1e-5)
    assert scale.min() >= math.log(9e-4) - 1e-5  # the 3D filter bounds every scale below
    # rotation: T R(_rotation + (1, 0, 0, 0)), a unit quaternion with w >= 0
    rotation = np.stack([ply[f"rot_{i}"] for i in range(4)], 1).astype(np.float64)
    assert np.allclose(np.linalg.norm(rotation, axis=1), 1, atol=1e-5)
    assert np.all(rotation[:, 0] >= 0)
    raw = gaussians.rotation.numpy().astype(np.float64) + np.array([1.0, 0, 0, 0])
    assert np.allclose(quaternion_matrix(rotation), T @ quaternion_matrix(raw), atol=1e-5)


def test_saturated_opacities_stay_finite() -> None:
    base = random_gaussians(4)
    opacity = torch.tensor([[40.0], [-40], [0], [5]])
    gaussians = GaussianParameters(base.xyz, base.features_dc, base.scaling, base.rotation, opacity)
    opacity = read_ply(gaussians_ply(gaussians, RELEASE))["opacity"]
    assert np.all(np.isfinite(opacity))
    assert np.allclose(opacity, [40 - math.log(9), -40 - math.log(9), -math.log(9),
                                 5 - math.log(9)], atol=1e-5)  # fmt: skip


def test_exp_scaling_and_unknown_activations() -> None:
    activations = GaussianActivations.from_representation_config(
        {**RELEASE, "scaling_activation": "exp", "3d_filter_kernel_size": 0.0}
    )
    scaling = torch.tensor([[0.0, 1.0, -2.0]])
    assert torch.allclose(activations.scales(scaling), 4e-3 * torch.exp(scaling), rtol=1e-5)
    with pytest.raises(ValueError, match="scaling activation"):
        GaussianActivations(4e-3, 0.1, 0.0, "relu").scales(scaling)


@pytest.mark.parametrize("seed", range(5))
def test_matrix_quaternion_inverts_the_rotation_matrix(seed: int) -> None:
    q = np.random.default_rng(seed).normal(size=(1, 4))
    q /= np.linalg.norm(q)
    found = matrix_quaternion(quaternion_matrix(q)[0])
    assert found[0] >= 0 and np.allclose(np.abs(found @ q[0]), 1, atol=1e-9)
    assert np.allclose(matrix_quaternion(T), [math.sqrt(0.5), math.sqrt(0.5), 0, 0])
