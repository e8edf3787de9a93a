"""One dilation round (torch_dilate._round) as a single Triton kernel, for CUDA devices.

Compiled by torch.compile, a round of the 2048 px bake's maps (8 int16 planes, 64 MB) ran as
three kernels of 0.4-0.5 ms each on an H200, ~21 ms for the bake's 16 rounds, about 150 GB/s;
this kernel takes 2.6 ms for the 16 rounds (benchmarks/device_steps.py, same bytes).
Here one program takes a run of texels, reads each plane's 3x3 neighbourhood (neighbours come
from the L1/L2 caches) and writes the grown planes once. The same integer arithmetic as the
torch round: the bytes are equal (checked under Triton's interpreter; on a GPU by
tests/backend/geometry/test_triton_dilate.py, and by torch_dilate.kernel_if_exact before a
process uses it).
Triton ships with torch's Linux CUDA wheels; without it this module has no kernel.
"""

from __future__ import annotations

from typing import Any

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch (CI): no kernel, torch_dilate keeps the compiled round
    triton = None

BLOCK = 1024  # texels per program


def available() -> bool:
    """True where Triton is installed (the kernel can be built for a CUDA device)."""
    return triton is not None


if triton is not None:  # the kernel exists only where Triton does

    @triton.jit
    def _box_sum(plane, row, col, inside, height, width, block: tl.constexpr):
        """Sum of one int16 plane over each texel's 3x3 neighbourhood (zero outside), int32."""
        total = tl.zeros((block,), dtype=tl.int32)
        for dy in tl.static_range(3):
            for dx in tl.static_range(3):
                r = row + (dy - 1)
                c = col + (dx - 1)
                ok = inside & (r >= 0) & (r < height) & (c >= 0) & (c < width)
                total += tl.load(plane + r * width + c, mask=ok, other=0).to(tl.int32)
        return total

    @triton.jit
    def _round_kernel(image, mask, image_out, mask_out, height, width,
                      channels: tl.constexpr, block: tl.constexpr):  # fmt: skip
        texel = tl.program_id(0) * block + tl.arange(0, block)
        plane = height * width
        inside = texel < plane
        row = texel // width
        col = texel % width
        count = _box_sum(mask, row, col, inside, height, width, block)
        own = tl.load(mask + texel, mask=inside, other=1).to(tl.int32)
        fresh = (count > 0) & (own == 0)
        halves = 2 * tl.maximum(count, 1)
        for channel in tl.static_range(channels):  # a build per map count (4-9), cached on disk
            base = image + channel * plane
            total = _box_sum(base, row, col, inside, height, width, block)
            # floor((2 total + n) / 2n): both sides are non-negative, so truncation is the floor
            mean = (2 * total + count) // halves
            value = tl.load(base + texel, mask=inside, other=0).to(tl.int32)
            grown = tl.where(fresh, mean, value)
            tl.store(image_out + channel * plane + texel, grown.to(tl.int16), mask=inside)
        tl.store(mask_out + texel, (own | fresh.to(tl.int32)).to(tl.int16), mask=inside)


def dilation_round(image: Any, mask: Any) -> tuple[Any, Any]:
    """torch_dilate._round: image (c, h, w) int16 (zero where empty), mask (1, h, w) int16,
    on a CUDA device -> new (image, mask), contiguous."""
    import torch

    image, mask = image.contiguous(), mask.contiguous()
    channels, height, width = image.shape
    image_out = torch.empty_like(image)
    mask_out = torch.empty_like(mask)
    grid = (triton.cdiv(height * width, BLOCK),)
    _round_kernel[grid](image, mask, image_out, mask_out, height, width,
                        channels=channels, block=BLOCK)  # fmt: skip
    return image_out, mask_out
