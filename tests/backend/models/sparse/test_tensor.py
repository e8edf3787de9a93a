"""SparseTensor: validation, layout, the shared cache, sparse_cat."""

from __future__ import annotations

import pytest
import torch

from backend.models.sparse.tensor import SparseTensor, sparse_cat


def coords_of(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int32)


def test_layout_slices_each_batch_element() -> None:
    x = SparseTensor(
        torch.zeros(5, 2),
        coords_of([[0, 0, 0, 0], [0, 1, 0, 0], [2, 0, 0, 0], [2, 0, 1, 0], [2, 0, 0, 1]]),
    )
    assert x.layout == (slice(0, 2), slice(2, 2), slice(2, 5))
    assert x.batch_size == 3
    padded = SparseTensor(torch.zeros(1, 2), coords_of([[0, 0, 0, 0]]), batch_size=2)
    assert padded.layout == (slice(0, 1), slice(1, 1))


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted by batch"):
        SparseTensor(torch.zeros(2, 1), coords_of([[1, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="int32"):
        SparseTensor(torch.zeros(1, 1), torch.zeros(1, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="feature rows"):
        SparseTensor(torch.zeros(2, 1), coords_of([[0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="batch_size"):
        SparseTensor(torch.zeros(0, 1), torch.zeros(0, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="outside a batch"):
        SparseTensor(torch.zeros(1, 1), coords_of([[3, 0, 0, 0]]), batch_size=2)


def test_replace_shares_coordinates_and_cache() -> None:
    x = SparseTensor(torch.zeros(2, 3), coords_of([[0, 0, 0, 0], [0, 0, 0, 1]]))
    x.cache["probe"] = 1
    y = x.replace(torch.ones(2, 5))
    assert y.coords is x.coords and y.cache is x.cache and y.feats.shape == (2, 5)
    assert x.to("cpu").cache is x.cache  # same device: the same coords tensor


def test_new_tensors_on_the_same_coords_tensor_share_its_cache() -> None:
    coords = coords_of([[0, 0, 0, 0], [0, 0, 0, 1]])
    x = SparseTensor(torch.zeros(2, 3), coords)
    x.cache["probe"] = 1
    assert SparseTensor(torch.ones(2, 1), coords).cache is x.cache
    assert SparseTensor(torch.ones(2, 1), coords.clone()).cache == {}
    assert SparseTensor(torch.ones(2, 1), coords, batch_size=3).cache == {}
    coords[1, 3] = 2  # changed in place: the old maps no longer describe it
    assert SparseTensor(torch.ones(2, 1), coords).cache == {}


def test_sparse_cat_joins_channels_on_the_same_coordinates() -> None:
    coords = coords_of([[0, 0, 0, 0], [0, 0, 0, 1]])
    a = SparseTensor(torch.zeros(2, 3), coords)
    b = a.replace(torch.ones(2, 2))
    joined = sparse_cat(a, b)
    assert joined.feats.tolist() == [[0, 0, 0, 1, 1]] * 2 and joined.cache is a.cache
    assert sparse_cat(a, SparseTensor(torch.ones(2, 1), coords.clone())).feats.shape == (2, 4)
    with pytest.raises(ValueError, match="same coordinates"):
        sparse_cat(a, SparseTensor(torch.zeros(2, 1), coords_of([[0, 0, 0, 0], [0, 1, 0, 1]])))
