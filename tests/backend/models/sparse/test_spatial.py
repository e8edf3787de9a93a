"""Downsample (upstream's sum/(n+1)), upsample back, subdivide into 8 ordered children."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch

from backend.models.sparse.spatial import SparseDownsample, SparseSubdivide, SparseUpsample
from backend.models.sparse.tensor import SparseTensor
from tests.backend.models.sparse.reference import DEVICES, from_dense, random_coords, to_dense


def test_downsample_divides_by_count_plus_one() -> None:
    # The numbers upstream's scatter_reduce('mean', include_self=True) gives (research §2.4).
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [0, 4, 4, 4]], dtype=torch.int32)
    feats = torch.tensor([[1.0], [3.0], [5.0]])
    out = SparseDownsample(2)(SparseTensor(feats, coords))
    assert out.coords.tolist() == [[0, 0, 0, 0], [0, 2, 2, 2]]
    torch.testing.assert_close(out.feats, torch.tensor([[4.0 / 3.0], [2.5]]))


@pytest.mark.parametrize("device", DEVICES)
def test_downsample_against_brute_force(device: str) -> None:
    generator = torch.Generator().manual_seed(0)
    coords = random_coords([200, 120], 8, generator)
    feats = torch.randn(len(coords), 3, generator=generator, dtype=torch.float64)
    out = SparseDownsample(2)(SparseTensor(feats, coords).to(device))
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (b, x, y, z) in enumerate(coords.tolist()):
        groups[(b, x // 2, y // 2, z // 2)].append(i)
    keys = sorted(groups)
    assert out.coords.cpu().tolist() == [list(k) for k in keys]
    expected = torch.stack([feats[groups[k]].sum(0) / (len(groups[k]) + 1) for k in keys])
    torch.testing.assert_close(out.feats.cpu(), expected)
    assert [s.stop - s.start for s in out.layout] == [
        sum(1 for k in keys if k[0] == b) for b in range(2)
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_upsample_returns_to_the_parent_coordinates(device: str) -> None:
    generator = torch.Generator().manual_seed(1)
    coords = random_coords([90, 70], 8, generator)
    x = SparseTensor(torch.randn(len(coords), 4, generator=generator), coords).to(device)
    down = SparseDownsample(2)(x)
    step = down.replace(down.feats * 3)  # blocks in between keep the link through replace()
    up = SparseUpsample(2)(step)
    assert up.coords is x.coords and up.cache is x.cache and up.layout == x.layout
    child = {tuple(c): i for i, c in enumerate(down.coords.cpu().tolist())}
    rows = [child[(b, x_ // 2, y // 2, z // 2)] for b, x_, y, z in coords.tolist()]
    torch.testing.assert_close(up.feats.cpu(), step.feats.cpu()[rows])
    assert up.parents == ()


def test_upsample_without_downsample_is_refused() -> None:
    x = SparseTensor(torch.ones(1, 1), torch.tensor([[0, 1, 1, 1]], dtype=torch.int32))
    with pytest.raises(ValueError, match="SparseDownsample"):
        SparseUpsample(2)(x)


def test_downsample_reuses_the_child_coordinate_set() -> None:
    generator = torch.Generator().manual_seed(2)
    coords = random_coords([40], 6, generator)
    x = SparseTensor(torch.randn(40, 2, generator=generator), coords)
    first = SparseDownsample(2)(x)
    second = SparseDownsample(2)(x.replace(x.feats + 1))
    assert second.coords is first.coords and second.cache is first.cache


def test_subdivide_children_order() -> None:
    coords = torch.tensor([[0, 1, 2, 3], [1, 0, 0, 5]], dtype=torch.int32)
    out = SparseSubdivide()(SparseTensor(torch.tensor([[1.0], [2.0]]), coords))
    children = [(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)]
    expected = [[0, 2 + i, 4 + j, 6 + k] for i, j, k in children]
    expected += [[1, i, j, 10 + k] for i, j, k in children]
    assert out.coords.tolist() == expected
    assert out.feats[:, 0].tolist() == [1.0] * 8 + [2.0] * 8
    assert out.layout == (slice(0, 8), slice(8, 16))


@pytest.mark.parametrize("device", DEVICES)
def test_subdivide_matches_nearest_upsampling_of_the_dense_grid(device: str) -> None:
    generator = torch.Generator().manual_seed(3)
    coords = random_coords([30, 20], 5, generator)
    feats = torch.randn(len(coords), 3, generator=generator)
    x = SparseTensor(feats, coords).to(device)
    out = SparseSubdivide()(x)
    dense = to_dense(coords, feats, 2, 5)
    upsampled = dense.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
    torch.testing.assert_close(out.feats.cpu(), from_dense(upsampled, out.coords.cpu()))
    assert len(torch.unique(out.coords.cpu(), dim=0)) == 8 * len(coords)
    assert SparseSubdivide()(x.replace(feats.to(device))).cache is out.cache
