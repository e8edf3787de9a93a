"""Spatial2Channel / Channel2Spatial: slot layout, parent order and the round trip."""

from __future__ import annotations

import torch

from backend.models.sparse import SparseTensor
from backend.models.sparse.spatial2channel import channel_to_spatial, spatial_to_channel


def _tensor() -> SparseTensor:
    coords = torch.tensor(
        [[0, 3, 0, 1], [0, 0, 0, 0], [0, 1, 1, 0], [0, 2, 1, 1], [1, 0, 0, 1]], dtype=torch.int32
    )
    feats = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    return SparseTensor(feats, coords)


def test_children_land_in_their_slots_of_sorted_parents() -> None:
    x = _tensor()
    down = spatial_to_channel(x)
    assert down.coords.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]]
    assert down.feats.shape == (3, 16)
    # child (1, 1, 0) of parent (0, 0, 0): slot x + 2 y + 4 z = 3
    torch.testing.assert_close(down.feats[0, 6:8], x.feats[2])
    torch.testing.assert_close(down.feats[0, 0:2], x.feats[1])
    # child (3, 0, 1) of parent (1, 0, 0): slot 1 + 4 = 5; (2, 1, 1): slot 0 + 2 + 4 = 6
    torch.testing.assert_close(down.feats[1, 10:12], x.feats[0])
    torch.testing.assert_close(down.feats[1, 12:14], x.feats[3])
    assert float(down.feats[1, :10].abs().sum()) == 0.0  # absent children are zeros


def test_channel_to_spatial_undoes_the_downsampling() -> None:
    x = _tensor()
    up = channel_to_spatial(spatial_to_channel(x))
    assert up.coords is x.coords
    torch.testing.assert_close(up.feats, x.feats)


def test_channel_to_spatial_follows_a_subdivision_mask() -> None:
    parents = SparseTensor(torch.arange(16.0).reshape(1, 16), torch.tensor([[0, 1, 2, 3]]).int())
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, [0, 5]] = True
    up = channel_to_spatial(parents, mask)
    assert up.coords.tolist() == [[0, 2, 4, 6], [0, 3, 4, 7]]
    torch.testing.assert_close(up.feats, torch.tensor([[0.0, 1.0], [10.0, 11.0]]))
