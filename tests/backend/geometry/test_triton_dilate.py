"""The dilation round's Triton kernel grows maps exactly as the torch round (CUDA only)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backend.geometry import torch_dilate, triton_dilate  # noqa: E402

CUDA = pytest.mark.skipif(
    not (torch.cuda.is_available() and triton_dilate.available()), reason="needs a CUDA GPU"
)


def test_without_triton_the_module_says_so() -> None:
    assert triton_dilate.available() == (triton_dilate.triton is not None)


@CUDA
@pytest.mark.parametrize(("height", "width", "channels"), [(37, 53, 3), (64, 40, 7), (20, 1030, 9)])
def test_kernel_rounds_are_the_torch_rounds(height: int, width: int, channels: int) -> None:
    rng = np.random.default_rng(height + channels)
    values = torch.as_tensor(rng.integers(0, 256, (height, width, channels), dtype=np.uint8))
    mask = torch.as_tensor(rng.random((height, width)) < 0.02).to(torch.int16)[None]
    image = values.permute(2, 0, 1).to(torch.int16) * mask  # not contiguous, as the bake's
    expected = (image.contiguous(), mask)
    ours = (image.cuda(), mask.cuda())
    for _ in range(6):
        expected = torch_dilate._round(*expected)
        ours = triton_dilate.dilation_round(*ours)
        assert torch.equal(ours[0].cpu(), expected[0])
        assert torch.equal(ours[1].cpu(), expected[1])
    assert 0 < int(expected[1].sum()) < expected[1].numel()


@CUDA
def test_cuda_jobs_take_the_kernel() -> None:
    grow = torch_dilate.round_function("cuda")
    assert grow is not torch_dilate._round
    image = torch.zeros((3, 8, 8), dtype=torch.int16, device="cuda")
    mask = torch.zeros((1, 8, 8), dtype=torch.int16, device="cuda")
    image[:, 4, 4], mask[0, 4, 4] = 9, 1
    image, mask = grow(image, mask)
    assert int(mask.sum()) == 9 and int(image[0].sum()) == 81


def test_a_kernel_is_used_only_once_it_grows_the_test_map_exactly(caplog) -> None:
    fallback = object()
    # The torch round itself passes the check (on the CPU here; on the GPU it runs there).
    assert torch_dilate.kernel_if_exact(torch_dilate._round, fallback, "cpu") is torch_dilate._round

    def off_by_one(image, mask):  # a kernel whose means are one too high
        grown, mask = torch_dilate._round(image, mask)
        return torch.where(grown > 0, grown + 1, grown), mask

    def broken(image, mask):
        raise RuntimeError("no C compiler for the launcher")

    with caplog.at_level("WARNING"):
        assert torch_dilate.kernel_if_exact(off_by_one, fallback, "cpu") is fallback
        assert torch_dilate.kernel_if_exact(broken, fallback, "cpu") is fallback
    assert "differently" in caplog.text and "no C compiler" in caplog.text
