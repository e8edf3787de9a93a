"""Submanifold convolution against F.conv3d on the dense grid (spconv's weight layout)."""

from __future__ import annotations

import pytest
import torch

from backend.models.sparse import conv as conv_module
from backend.models.sparse.conv import (
    SparseConv3d,
    build_neighbour_map,
    kernel_offsets,
    submanifold_conv3d,
)
from backend.models.sparse.tensor import SparseTensor
from tests.backend.models.sparse.reference import DEVICES, dense_conv_reference, random_coords


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel_size", [3, 1])
def test_conv_matches_dense_conv3d(device: str, kernel_size: int) -> None:
    generator = torch.Generator().manual_seed(0)
    resolution = 9
    coords = random_coords([150, 90], resolution, generator)
    feats = torch.randn(len(coords), 5, generator=generator, dtype=torch.float64)
    layer = SparseConv3d(5, 7, kernel_size).double()
    with torch.no_grad():
        # Asymmetric weights: a flipped or transposed kernel axis would not cancel out.
        layer.conv.weight.copy_(torch.randn(layer.conv.weight.shape, generator=generator))
    x = SparseTensor(feats, coords).to(device)
    out = layer.to(device)(x)
    expected = dense_conv_reference(
        coords, feats, layer.conv.weight.detach().cpu(), layer.conv.bias.detach().cpu(), resolution
    )
    assert out.coords is x.coords
    torch.testing.assert_close(out.feats.cpu(), expected, rtol=1e-10, atol=1e-10)


def test_pointwise_conv_reads_the_weight_buffer_like_spconv() -> None:
    """spconv's 1x1x1 SubMConv3d multiplies by ``weight.view(Ci, Co)`` (not the transpose of
    [Co, Ci]); upstream's mesh decoder skip connections run that, so ours must (CPU dry run of
    issue 13: mesh_feats off by 156 % without it)."""
    layer = SparseConv3d(2, 3, 1)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.arange(6.0).reshape(3, 1, 1, 1, 2))
        layer.conv.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    coords = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 3, 2, 1]], dtype=torch.int32)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    out = layer(SparseTensor(feats, coords)).feats
    # The buffer 0..5 read as rows of a (Ci=2, Co=3) matrix: [[0, 1, 2], [3, 4, 5]].
    expected = torch.tensor([[0.5, 1.0, 1.5], [3.5, 4.0, 4.5], [-2.5, -2.0, -1.5]])
    torch.testing.assert_close(out, expected)
    # The plain formula (TRELLIS.2's FlexGEMM convs) stays W[:, 0, 0, 0, :] @ feats.
    neighbours = torch.arange(3).reshape(3, 1)
    plain = submanifold_conv3d(feats, neighbours, layer.conv.weight, layer.conv.bias)
    weight, bias = layer.conv.weight[:, 0, 0, 0, :], layer.conv.bias
    torch.testing.assert_close(plain, feats @ weight.t() + bias)


def test_state_dict_keys_are_spconv_style() -> None:
    layer = SparseConv3d(4, 6, 3)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {"conv.weight": (6, 3, 3, 3, 4), "conv.bias": (6,)}
    assert {k: tuple(v.shape) for k, v in SparseConv3d(4, 6, 1).state_dict().items()} == {
        "conv.weight": (6, 1, 1, 1, 4),
        "conv.bias": (6,),
    }


def test_neighbour_map_against_brute_force() -> None:
    generator = torch.Generator().manual_seed(1)
    coords = random_coords([60, 40], 5, generator)
    neighbours = build_neighbour_map(coords, 3)
    lookup = {tuple(c): i for i, c in enumerate(coords.tolist())}
    offsets = kernel_offsets(3).tolist()
    for i, (b, x, y, z) in enumerate(coords.tolist()):
        for v, (dx, dy, dz) in enumerate(offsets):
            want = lookup.get((b, x + dx, y + dy, z + dz), len(coords))
            assert int(neighbours[i, v]) == want


def test_chunked_product_equals_one_shot() -> None:
    generator = torch.Generator().manual_seed(2)
    coords = random_coords([300], 10, generator)
    feats = torch.randn(len(coords), 6, generator=generator, dtype=torch.float64)
    weight = torch.randn(4, 3, 3, 3, 6, generator=generator, dtype=torch.float64)
    bias = torch.randn(4, generator=generator, dtype=torch.float64)
    neighbours = build_neighbour_map(coords, 3)
    whole = submanifold_conv3d(feats, neighbours, weight, bias)
    chunked = submanifold_conv3d(feats, neighbours, weight, bias, chunk_elements=27 * 6 * 7)
    unbiased = submanifold_conv3d(feats, neighbours, weight, None, chunk_elements=27 * 6 * 7)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(unbiased + bias, whole, rtol=1e-12, atol=1e-12)


def test_neighbour_map_built_once_per_coordinate_set(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(3)
    coords = random_coords([50], 6, generator)
    builds = []
    original = conv_module.build_neighbour_map

    def counting(coords: torch.Tensor, kernel_size: int) -> torch.Tensor:
        builds.append(kernel_size)
        return original(coords, kernel_size)

    monkeypatch.setattr(conv_module, "build_neighbour_map", counting)
    x = SparseTensor(torch.randn(50, 3, generator=generator), coords)
    first, second = SparseConv3d(3, 3, 3), SparseConv3d(3, 4, 3)
    h = second(first(x))
    second(h.replace(h.feats[:, :3] * 2))  # a later sampler step: same coordinates
    assert builds == [3]
    SparseConv3d(3, 3, 3)(SparseTensor(x.feats, coords.clone()))  # a new coordinate set
    assert builds == [3, 3]


def test_empty_and_single_voxel() -> None:
    layer = SparseConv3d(2, 3, 3)
    empty = SparseTensor(torch.zeros(0, 2), torch.zeros(0, 4, dtype=torch.int32), batch_size=1)
    assert layer(empty).feats.shape == (0, 3)
    one = SparseTensor(torch.ones(1, 2), torch.tensor([[0, 4, 4, 4]], dtype=torch.int32))
    centre = layer.conv.weight[:, 1, 1, 1, :]
    torch.testing.assert_close(layer(one).feats[0], centre.sum(1) + layer.conv.bias)
