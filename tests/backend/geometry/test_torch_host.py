"""torch_host: device-to-host copies through page-locked memory give .cpu().numpy()'s arrays."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backend.geometry import torch_host  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _tensors(device: str) -> list:
    generator = torch.Generator().manual_seed(4)
    values = torch.randn((1000, 3), generator=generator, dtype=torch.float64)
    return [
        values.float().to(device),
        (values * 1e6).long().to(device),
        (values > 0).to(device),
        values.to(device).t(),  # not contiguous
        values[:0].to(device),  # empty
        values.to(device)[::3, 1],  # strided
    ]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_copies_are_the_plain_copies(device: str) -> None:
    tensors = _tensors(device)
    copies = torch_host.to_numpy_all(tensors)
    assert len(copies) == len(tensors)
    for tensor, copy in zip(tensors, copies, strict=True):
        expected = tensor.cpu().numpy()
        assert copy.dtype == expected.dtype and copy.shape == expected.shape
        np.testing.assert_array_equal(copy, expected)
    np.testing.assert_array_equal(torch_host.to_numpy(tensors[1]), tensors[1].cpu().numpy())


@CUDA
def test_cuda_copies_land_in_page_locked_memory_up_to_the_limit(monkeypatch) -> None:
    tensor = torch.arange(4096, device="cuda")
    copy = torch_host.to_numpy(tensor)
    assert torch.from_numpy(copy).is_pinned()
    monkeypatch.setattr(torch_host, "PINNED_LIMIT_BYTES", 1024)
    big = torch_host.to_numpy(tensor)
    assert not torch.from_numpy(big).is_pinned()
    np.testing.assert_array_equal(big, copy)
