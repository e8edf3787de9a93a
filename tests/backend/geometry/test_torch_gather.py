"""torch_gather.rows is table[index]; transfer_torch._project is transfer._project's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backend.geometry import torch_gather, transfer_torch  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("row_shape", [(), (2,), (3,), (3, 2), (4,)])
@pytest.mark.parametrize("index_shape", [(0,), (17,), (50, 3)])
def test_rows_are_the_indexed_rows(device: str, row_shape: tuple, index_shape: tuple) -> None:
    generator = torch.Generator().manual_seed(len(row_shape) * 10 + len(index_shape))
    table = torch.randn((40, *row_shape), generator=generator, dtype=torch.float64).to(device)
    index = torch.randint(0, 40, index_shape, generator=generator).to(device)
    ours = torch_gather.rows(table, index)
    expected = table[index]
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    assert torch.equal(ours, expected)


def test_projection_rounds_as_the_compiled_splat() -> None:
    """((o + m0 x) + m1 y) + m2 z, then times the size: the bits of transfer._project."""
    rng = np.random.default_rng(8)
    c = 5000
    points = rng.normal(size=(c, 3, 3)) * rng.uniform(1e-3, 1e3, (c, 1, 1))
    affine = rng.normal(size=(c, 2, 3)) * 1e2
    shift = rng.normal(size=(c, 2))
    ours = transfer_torch._project(*(torch.as_tensor(a) for a in (points, affine, shift)), 2048)
    expected = np.empty((c, 3, 2))
    for axis in range(2):  # transfer._project's expression, vectorised over copies and corners
        m = affine[:, None, axis, :]
        expected[:, :, axis] = (
            shift[:, None, axis] + m[..., 0] * points[..., 0] + m[..., 1] * points[..., 1]
            + m[..., 2] * points[..., 2]
        ) * 2048  # fmt: skip
    np.testing.assert_array_equal(ours.numpy(), expected)
