"""radiance_field.py: the Strivec colour at points, with upstream's sample_trivec convention
(research 1.6: q = u dim - 0.5, index clamped to [0, dim - 2], weight not clamped)."""

from __future__ import annotations

import numpy as np
import torch

from backend.models.trellis.mesh_extraction import TRELLIS_TO_BACKEND
from backend.models.trellis.radiance_field import (
    StrivecColour,
    radiance_field_colour_field,
    sample_colour,
)
from backend.models.trellis.slat_decoders import RadianceFieldParameters

C0 = 0.28209479177387814
RES = 64


def field(coords, trivec, features_dc) -> StrivecColour:
    coords = torch.tensor(coords, dtype=torch.float32)
    trivec = torch.tensor(trivec, dtype=torch.float32)
    rf = RadianceFieldParameters(
        position=(coords + 0.5) / RES, depth=6, trivec=trivec,
        density=torch.zeros(trivec.shape[:2]),
        features_dc=torch.tensor(features_dc, dtype=torch.float32)[:, :, None, :],
    )  # fmt: skip
    return StrivecColour.from_parameters(rf)


def at(voxel, local) -> np.ndarray:
    """TRELLIS-frame points at ``local`` (k, 3) positions in [0, 1] inside ``voxel``."""
    return (np.asarray(voxel) + np.asarray(local)) / RES - 0.5


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_a_ramp_along_x_follows_upstreams_index_and_extrapolation() -> None:
    """vec = (0, 1, 2, 3) along x, ones along y and z: the value is 4u - 0.5 for every u in
    [0, 1] (extrapolated below the first and past the last sample), so the colour is known."""
    trivec = np.ones((1, 1, 3, 4))
    trivec[0, 0, 0] = [0, 1, 2, 3]
    rf = field([[10, 20, 30]], trivec, [[[1.0, -2.0, 0.5]]])
    u = np.linspace(0.0, 0.999, 11)
    local = np.stack([u, np.full_like(u, 0.3), np.full_like(u, 0.7)], 1)
    colours = sample_colour(rf, at([10, 20, 30], local))
    expected = sigmoid(C0 * (4 * u - 0.5)[:, None] * np.array([1.0, -2.0, 0.5]))
    assert np.allclose(colours, expected, atol=1e-5)


def test_ranks_multiply_their_axes_and_add_up() -> None:
    rng = np.random.default_rng(1)
    trivec = rng.normal(size=(1, 3, 3, 2))  # dim 2: one segment, w = 2u - 0.5
    f_dc = rng.normal(size=(1, 3, 3))
    rf = field([[5, 6, 7]], trivec, f_dc)
    local = np.array([[0.1, 0.5, 0.9], [0.8, 0.2, 0.4]])
    w = 2 * local - 0.5
    values = trivec[0][None, :, :, 0] + (trivec[0][None, :, :, 1] - trivec[0][None, :, :, 0]) \
        * w[:, None, :]  # (k, R, 3)
    expected = sigmoid(C0 * np.einsum("kr,rc->kc", values.prod(axis=2), f_dc[0]))
    assert np.allclose(sample_colour(rf, at([5, 6, 7], local)), expected, atol=1e-5)


def test_each_voxel_keeps_its_own_field_and_empty_space_takes_the_nearest() -> None:
    ones = np.ones((2, 1, 3, 4))
    rf = field([[3, 3, 3], [40, 3, 3]], ones, [[[4.0, 0, 0]], [[0, 0, 4.0]]])
    red, blue = sigmoid(C0 * np.array([4.0, 0, 0])), sigmoid(C0 * np.array([0, 0, 4.0]))
    points = np.concatenate([at([3, 3, 3], [[0.5, 0.5, 0.5]]), at([40, 3, 3], [[0.2, 0.9, 0.1]]),
                             at([5, 3, 3], [[0.5, 0.5, 0.5]]),  # empty: nearest is (3, 3, 3)
                             at([37, 3, 3], [[0.5, 0.5, 0.5]])])  # fmt: skip
    colours = sample_colour(rf, points)
    assert np.allclose(colours, [red, blue, red, blue], atol=1e-5)


def test_the_colour_field_turns_backend_points_into_trellis_ones() -> None:
    trivec = np.ones((1, 1, 3, 4))
    trivec[0, 0, 2] = [0, 1, 2, 3]  # a ramp along TRELLIS's z (the backend's y)
    rf = field([[30, 30, 30]], trivec, [[[1.0, 1.0, 1.0]]])
    trellis_points = at([30, 30, 30], [[0.5, 0.5, 0.1], [0.5, 0.5, 0.9]])
    backend_points = trellis_points @ np.array(TRELLIS_TO_BACKEND).T
    colours = radiance_field_colour_field(rf)(backend_points)
    assert np.allclose(colours, sample_colour(rf, trellis_points), atol=1e-6)
    assert colours[1, 0] > colours[0, 0]  # higher up, further along the ramp
