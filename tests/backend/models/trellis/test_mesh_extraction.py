"""features_to_mesh: upstream's channel layout and defaults, closed outward meshes, the frame."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from backend.models.trellis import flexicubes
from backend.models.trellis.mesh_extraction import (
    FEATURE_CHANNELS,
    features_to_mesh,
    to_backend_frame,
    vertex_attributes,
)
from shared_protocol.errors import ErrorCode, ProtocolError

# Upstream's layout (cube2mesh.py _calc_layout), written out independently of the module.
SDF, DEFORM, WEIGHTS, COLOUR = slice(0, 8), slice(8, 32), slice(32, 53), slice(53, 101)
CORNERS = torch.tensor([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)])


def _coords(xyz: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros(len(xyz), 1, dtype=torch.int32), xyz.int()], dim=1)


def _field_features(res: int, field, reach: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxels whose corners reach ``field < reach / res``, sdf channels = field at the corners
    (+1/res, so the surface lands at field = 0), every other channel 0."""
    xyz = torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).reshape(-1, 3)
    corners = (xyz[:, None, :] + CORNERS[None]).double() / res - 0.5  # (N, 8, 3)
    values = field(corners)
    keep = (values < reach / res).any(dim=1)
    feats = torch.zeros(int(keep.sum()), FEATURE_CHANNELS)
    feats[:, SDF] = (values[keep] + 1.0 / res).float()
    return _coords(xyz[keep]), feats


def _sphere(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=-1) - 0.3


def _torus(points: torch.Tensor) -> torch.Tensor:
    ring = points[..., :2].norm(dim=-1) - 0.25
    return torch.stack([ring, points[..., 2]], dim=-1).norm(dim=-1) - 0.1


def _signed_volume(vertices: torch.Tensor, faces: torch.Tensor) -> float:
    a, b, c = (vertices[faces[:, i]].double() for i in range(3))
    return float((a * torch.cross(b, c, dim=1)).sum() / 6)


def _check_closed_oriented(faces: torch.Tensor) -> int:
    """Asserts every directed edge appears once and its reverse too; returns the edge count."""
    directed = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    unique_directed = torch.unique(directed, dim=0)
    assert len(unique_directed) == len(directed), "a directed edge is used twice"
    reverse = torch.unique(directed.flip(1), dim=0)
    assert torch.equal(unique_directed, reverse), "an edge has a single face"
    return len(directed) // 2


@pytest.mark.parametrize(
    ("field", "res", "euler", "volume"),
    [
        (_sphere, 16, 2, 4 / 3 * math.pi * 0.3**3),
        (_torus, 24, 0, 2 * math.pi**2 * 0.25 * 0.1**2),
    ],
)
def test_closed_outward_manifold_near_the_surface(field, res, euler, volume) -> None:
    coords, feats = _field_features(res, field, reach=2.0)
    mesh = features_to_mesh(coords, feats, res)
    edges = _check_closed_oriented(mesh.faces)
    used = torch.unique(mesh.faces)
    assert len(used) == len(mesh.vertices)
    assert len(mesh.vertices) - edges + len(mesh.faces) == euler
    # Dual vertices average crossings on a curved surface, so they sit a little inside it.
    assert _signed_volume(mesh.vertices, mesh.faces) == pytest.approx(volume, rel=0.08)
    distance = field(mesh.vertices.double()).abs()
    assert float(distance.max()) < 0.15 / res  # grid spacing is 1 / res
    assert mesh.colours.shape == (len(mesh.vertices), 6)


def test_matches_a_dense_reference_on_random_features() -> None:
    res, generator = 5, torch.Generator().manual_seed(3)
    every = torch.tensor(list(itertools.product(range(res), repeat=3)))
    xyz = every[torch.rand(len(every), generator=generator) < 0.45]
    xyz = xyz[torch.randperm(len(xyz), generator=generator)]
    feats = torch.randn(len(xyz), FEATURE_CHANNELS, generator=generator)
    mesh = features_to_mesh(_coords(xyz), feats, res)

    # Dense grids with upstream's defaults, corner values averaged with plain loops.
    count = (res + 1) ** 3
    sums, hits = torch.zeros(count, 10, dtype=torch.float64), torch.zeros(count)
    per_corner = torch.cat(
        [
            (feats[:, SDF] - 1.0 / res).reshape(-1, 8, 1),
            feats[:, DEFORM].reshape(-1, 8, 3),
            feats[:, COLOUR].reshape(-1, 8, 6),
        ],
        dim=2,
    ).double()
    for voxel, point in enumerate(xyz):
        for corner in range(8):
            vertex = int(flexicubes.grid_ids((point + CORNERS[corner])[None], res))
            sums[vertex] += per_corner[voxel, corner]
            hits[vertex] += 1
    values = torch.zeros(count, 10, dtype=torch.float64)
    values[:, 0] = 1.0
    values[hits > 0] = sums[hits > 0] / hits[hits > 0, None]
    rest = flexicubes.grid_points(torch.arange(count), res).double()
    positions = rest / res - 0.5 + (1 - 1e-8) / (2 * res) * torch.tanh(values[:, 1:4])
    weights = torch.zeros(res**3, 21, dtype=torch.float64)
    cube_index = (xyz[:, 0] * res + xyz[:, 1]) * res + xyz[:, 2]
    weights[cube_index] = feats[:, WEIGHTS].double()
    dense = flexicubes.extract(
        res,
        torch.arange(count),
        positions,
        values[:, 0],
        flexicubes.grid_ids(torch.tensor(list(itertools.product(range(res), repeat=3))), res),
        weights,
        vertex_attributes=torch.sigmoid(values[:, 4:]),
    )
    assert len(mesh.faces) > 0
    assert torch.equal(mesh.faces, dense.faces)
    torch.testing.assert_close(mesh.vertices.double(), dense.vertices, rtol=0, atol=1e-6)
    assert dense.attributes is not None
    torch.testing.assert_close(mesh.colours.double(), dense.attributes, rtol=0, atol=1e-6)


def _block(*fills: tuple[slice, torch.Tensor]):
    """A 2x2x2 block of voxels (2..3 on each axis) at res 8; features 0 unless filled."""
    xyz = torch.tensor(list(itertools.product((2, 3), repeat=3)))
    feats = torch.zeros(8, FEATURE_CHANNELS)
    for channels, value in fills:
        feats[:, channels] = value
    return features_to_mesh(_coords(xyz), feats, 8)


def test_sdf_bias_puts_a_zero_field_inside() -> None:
    # sdf 0 - 1/8 on the block's vertices, +1 around: crossings 1/9 of a cell outside.
    mesh = _block()
    step = 1.0 / 8
    low, high = (2 - 1 / 9) * step - 0.5, (4 + 1 / 9) * step - 0.5
    torch.testing.assert_close(mesh.vertices.amin(dim=0), torch.full((3,), low))
    torch.testing.assert_close(mesh.vertices.amax(dim=0), torch.full((3,), high))
    assert _signed_volume(mesh.vertices, mesh.faces) > 0


def test_colour_channels_are_sigmoid_rgb_then_normal_and_default_half() -> None:
    per_channel = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    mesh = _block((COLOUR, per_channel.repeat(8)))
    # Every crossing sits 1/9 of the way from a block vertex to a default (colour 0) vertex.
    expected = 8 / 9 * torch.sigmoid(per_channel) + 1 / 9 * 0.5
    torch.testing.assert_close(mesh.colours, expected.expand_as(mesh.colours))


def test_deform_channels_move_the_block_vertices_along_their_axes() -> None:
    deform = torch.tensor([0.3, -0.7, 1.1])
    still, moved = _block(), _block((DEFORM, deform.repeat(8)))
    shift = 8 / 9 * (1 - 1e-8) / 16 * torch.tanh(deform)
    torch.testing.assert_close(moved.vertices - still.vertices, shift.expand_as(still.vertices))


@pytest.mark.parametrize("corner", [1, 2, 4, 7])
def test_sdf_corners_are_x_fastest(corner: int) -> None:
    feats = torch.zeros(1, FEATURE_CHANNELS)
    feats[0, SDF] = 1.0
    feats[0, corner] = -1.0  # only this corner of voxel (3, 3, 3) is inside
    mesh = features_to_mesh(_coords(torch.tensor([[3, 3, 3]])), feats, 8)
    expected = (torch.tensor([3, 3, 3]) + CORNERS[corner]).float() / 8 - 0.5
    torch.testing.assert_close(mesh.vertices.mean(dim=0), expected, atol=0.01, rtol=0)


def test_vertex_attributes_is_a_true_mean() -> None:
    # Two voxels share four vertices; a third value at a vertex only one voxel touches.
    ids = flexicubes.grid_ids(torch.tensor([[0, 0, 0], [1, 0, 0]]), 4)
    values = torch.zeros(2, 8, 1)
    values[0, :, 0] = torch.arange(8.0)
    values[1, :, 0] = 10 + torch.arange(8.0)
    vertex_ids, means = vertex_attributes(ids, values, 4)
    lookup = dict(zip(vertex_ids.tolist(), means[:, 0].tolist(), strict=True))
    shared = int(flexicubes.grid_ids(torch.tensor([[1, 0, 0]]), 4))
    assert lookup[shared] == pytest.approx((1 + 10) / 2)  # voxel 0 corner 1, voxel 1 corner 0
    assert lookup[0] == 0.0 and len(lookup) == 12


def test_no_voxel_or_no_surface_is_a_model_error() -> None:
    with pytest.raises(ProtocolError) as empty:
        features_to_mesh(torch.zeros(0, 4, dtype=torch.int32), torch.zeros(0, 101), 8)
    assert empty.value.code == ErrorCode.MODEL_FAILED
    assert "no occupied voxel" in str(empty.value)
    feats = torch.ones(1, FEATURE_CHANNELS)  # sdf 1 - 1/8 everywhere: nothing inside
    with pytest.raises(ProtocolError) as outside:
        features_to_mesh(_coords(torch.tensor([[3, 3, 3]])), feats, 8)
    assert outside.value.code == ErrorCode.MODEL_FAILED


def test_bad_inputs_are_rejected() -> None:
    coords = _coords(torch.tensor([[1, 1, 1], [1, 1, 1]]))
    with pytest.raises(ValueError, match="twice"):
        features_to_mesh(coords, torch.zeros(2, FEATURE_CHANNELS), 4)
    with pytest.raises(ValueError, match="101"):
        features_to_mesh(coords, torch.zeros(2, 100), 4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        features_to_mesh(_coords(torch.tensor([[4, 0, 0]])), torch.zeros(1, 101), 4)
    mixed = torch.tensor([[0, 1, 1, 1], [1, 2, 2, 2]])
    with pytest.raises(ValueError, match="batch"):
        features_to_mesh(mixed, torch.zeros(2, FEATURE_CHANNELS), 4)


def test_backend_frame_is_y_up_facing_plus_z_and_keeps_orientation() -> None:
    up, front = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.0, -1.0, 0.0]])
    assert to_backend_frame(up).tolist() == [[0.0, 1.0, 0.0]]
    assert to_backend_frame(front).tolist() == [[0.0, 0.0, 1.0]]
    coords, feats = _field_features(12, _torus, reach=2.0)
    mesh = features_to_mesh(coords, feats, 12)
    turned = to_backend_frame(mesh.vertices)
    assert _signed_volume(turned, mesh.faces) == pytest.approx(
        _signed_volume(mesh.vertices, mesh.faces), rel=1e-5
    )
    # The torus's axis (+Z in TRELLIS) is +Y now: the mesh is thin along y.
    extent = turned.amax(dim=0) - turned.amin(dim=0)
    assert float(extent[1]) < 0.5 * float(extent[0])
