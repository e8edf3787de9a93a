"""quantiles.quantile: np.quantile's linear answer to the bit, from a parallel histogram."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import quantiles


def _levels(parts: int, shift: float) -> np.ndarray:
    return (np.arange(1, parts + (1 if shift else 0)) - shift) / parts  # the decimator's


@pytest.mark.parametrize("seed", range(12))
def test_matches_numpy_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 50_000))
    kind = seed % 4
    if kind == 0:
        values = rng.normal(size=n)
    elif kind == 1:  # few distinct values: ranks inside long runs of ties
        values = rng.integers(0, 7, n).astype(np.float64)
    elif kind == 2:  # a heavy tail: most values in one bin
        values = np.exp(rng.normal(0, 6, n))
    else:  # a mesh's centroids along an axis (sums of three corners)
        values = rng.uniform(-1, 1, (n, 3)).astype(np.float32).astype(np.float64).sum(axis=1)
    for parts in (2, 8, 16):
        for shift in (0.0, 0.5):
            levels = _levels(parts, shift)
            for chunks in (1, 3, 16):
                got = quantiles.quantile(values, levels, chunks)
                assert np.array_equal(got, np.quantile(values, levels)), (n, parts, chunks)


def test_edge_levels_and_sizes() -> None:
    values = np.random.default_rng(1).random(1000)
    levels = np.array([0.0, 1e-9, 0.5, 1 - 1e-12, 1.0])
    assert np.array_equal(quantiles.quantile(values, levels, 4), np.quantile(values, levels))
    one = np.array([2.5])
    assert np.array_equal(quantiles.quantile(one, levels, 4), np.quantile(one, levels))
    same = np.full(100, -3.0)
    assert np.array_equal(quantiles.quantile(same, levels, 4), np.quantile(same, levels))


def test_non_finite_values_get_numpys_answer() -> None:
    values = np.random.default_rng(2).random(500)
    levels = np.array([0.25, 0.5, 0.75])
    for bad in (np.nan, np.inf, -np.inf):
        with_bad = values.copy()
        with_bad[7] = bad
        np.testing.assert_array_equal(
            quantiles.quantile(with_bad, levels, 4), np.quantile(with_bad, levels)
        )
