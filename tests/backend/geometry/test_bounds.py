"""bounds.py: the column-wise bounds equal numpy's row-wise reductions, dtype included."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry.bounds import bounds, extent


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_bounds_equal_numpy_axis_reductions(dtype) -> None:
    rng = np.random.default_rng(3)
    points = (rng.normal(size=(1001, 3)) * 50).astype(dtype)
    low, high = bounds(points)
    assert low.dtype == points.dtype and high.dtype == points.dtype
    np.testing.assert_array_equal(low, points.min(axis=0))
    np.testing.assert_array_equal(high, points.max(axis=0))
    np.testing.assert_array_equal(extent(points), points.max(axis=0) - points.min(axis=0))


def test_bounds_of_a_strided_view_and_one_point() -> None:
    grid = np.arange(60, dtype=np.float64).reshape(10, 6)[:, ::2]  # (10, 3), not contiguous
    low, high = bounds(grid)
    np.testing.assert_array_equal(low, [0, 2, 4])
    np.testing.assert_array_equal(high, [54, 56, 58])
    low, high = bounds(np.array([[1.0, -2.0]]))
    np.testing.assert_array_equal(low, [1.0, -2.0])
    np.testing.assert_array_equal(high, [1.0, -2.0])
