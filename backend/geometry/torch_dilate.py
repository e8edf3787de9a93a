"""dilate.py's border growth on a torch device: the same rounds, in exact integer arithmetic.

Each round fills every empty texel that touches a filled one with the mean of its filled
8-neighbours, rounded as dilate.py rounds (floor of mean + 0.5, here the integer
(2 sum + n) // (2 n)), so both give the same bytes. A round is a separable 3x3 box sum of
int16 images (two shifted adds per axis; sums stay below 2^12) over the whole image: on a
GPU that costs far less than following the front texel by texel, and integers keep it exact
on any device (a float convolution on CUDA may run in TF32, which cannot hold the sums).
The rounds run without asking the device whether the front is empty: a round with nothing to
fill changes nothing, and each such question would be a host sync.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from backend.geometry.torch_host import to_numpy_all

log = logging.getLogger(__name__)


def _box3(image: Any) -> Any:
    """Sum over each texel's 3x3 neighbourhood (zero outside): image (c, h, w) -> (c, h, w)."""
    import torch.nn.functional as functional

    padded = functional.pad(image, (1, 1, 1, 1))
    rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]  # (c, h, w + 2)
    return rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]


def _round(image: Any, mask: Any) -> tuple[Any, Any]:
    """One ring: image (c, h, w) int16 zero where empty, mask (1, h, w) int16 -> both grown."""
    import torch

    channels = image.shape[0]
    both = _box3(torch.cat([image, mask]))  # one pass: channel sums and the count
    total, count = both[:channels], both[channels:]
    fresh = (count > 0) & (mask == 0)
    mean = torch.div(2 * total + count, 2 * count.clamp(min=1), rounding_mode="floor")
    return torch.where(fresh, mean, image), mask | fresh.to(torch.int16)


_COMPILED: dict[str, Any] = {}
_SETUP = threading.Lock()  # the start-up warm-up and a first job may both ask at once


def round_function(device: Any) -> Any:
    """``_round``, compiled where the backend compiles (``backend.torch_compile``): eager, a
    round is ~12 whole-image kernels; compiled, three (0.4-0.5 ms each at 2048 px on an H200).
    On a CUDA device, one Triton kernel (triton_dilate.py) once it has passed
    :func:`kernel_if_exact` there; else the compiled round. The same integer arithmetic in all."""
    from backend.torch_compile import compile_or_eager, should_compile

    if not should_compile(device):
        return _round
    import torch

    with _SETUP:  # once per process: the wrapper, the kernel's build and its check
        if "round" not in _COMPILED:
            from backend.torch_ahead import compiled_ahead

            compiled = compiled_ahead(_round, device)  # kept on disk for the next process
            _COMPILED["round"] = compile_or_eager(compiled, _round, "the dilation round")
        if torch.device(device).type != "cuda":
            return _COMPILED["round"]
        if "triton" not in _COMPILED:
            from backend.geometry import triton_dilate

            _COMPILED["triton"] = (
                kernel_if_exact(triton_dilate.dilation_round, _COMPILED["round"], device)
                if triton_dilate.available()
                else _COMPILED["round"]  # no Triton: the compiled round
            )
        return _COMPILED["triton"]


def kernel_if_exact(kernel: Any, fallback: Any, device: Any) -> Any:
    """``kernel`` (a hand-written round) once it has grown a small random map on ``device``
    exactly as :func:`_round` does on the CPU, four rounds; else ``fallback``, with a warning
    saying why. Run once per process: a wrong kernel would write wrong maps without an error,
    so it is proven where it runs (its build, the driver, the GPU) before any job uses it."""
    import torch

    generator = torch.Generator().manual_seed(0)
    mask = (torch.rand((1, 37, 53), generator=generator) < 0.05).to(torch.int16)
    image = torch.randint(0, 256, (4, 37, 53), generator=generator, dtype=torch.int16) * mask
    expected, ours = (image, mask), (image.to(device), mask.to(device))
    try:
        for _ in range(4):
            expected, ours = _round(*expected), kernel(*ours)
        exact = all(torch.equal(a.cpu(), b) for a, b in zip(ours, expected, strict=True))
    except Exception as error:  # no compiler for Triton's launcher, an unsupported GPU
        log.warning("the dilation kernel failed its check (%s: %s): the compiled round is used",
                    type(error).__name__, error)  # fmt: skip
        return fallback
    if not exact:
        log.warning("the dilation kernel grew a test map differently from the torch round: "
                    "the compiled round is used")  # fmt: skip
        return fallback
    return kernel


def dilate_tensor(values: Any, filled: Any, rounds: int) -> tuple[Any, Any]:
    """values (h, w, c) uint8 tensor, filled (h, w) bool tensor -> new (values, filled)."""
    import torch  # optional dependency: only the torch geometry path needs it

    grow = round_function(values.device)
    mask = filled.to(torch.int16)[None]  # (1, h, w)
    image = values.permute(2, 0, 1).to(torch.int16) * mask  # (c, h, w), zero where empty
    for _ in range(rounds):
        image, mask = grow(image, mask)
    out = image.permute(1, 2, 0).to(torch.uint8)
    # Texels never reached keep their input bytes, as dilate.py leaves them.
    out = torch.where(mask[0, :, :, None] > 0, out, values).contiguous()
    return out, mask[0] > 0


def dilate(
    values: np.ndarray, filled: np.ndarray, rounds: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """``dilate.dilate`` on ``device``: values (h, w, c) uint8, filled (h, w) bool."""
    import torch

    dev = torch.device(device)
    out, grown = dilate_tensor(
        torch.as_tensor(np.ascontiguousarray(values, dtype=np.uint8), device=dev),
        torch.as_tensor(np.ascontiguousarray(filled, dtype=bool), device=dev),
        rounds,
    )
    out_np, grown_np = to_numpy_all([out, grown])
    return out_np, grown_np


def dilate_texels(
    texel_bytes: np.ndarray, flat: np.ndarray, size: int, rounds: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """The bake's whole map tail on ``device``: baked texels texel_bytes (k, c) uint8 at row-major
    indices flat (k,) -> (maps (size, size, c) uint8, grown (size, size) bool), the same bytes
    as placing them in an empty image on the host, ``dilate`` and filling texels the rounds
    never reach with the rounded mean of the baked texels (bake.py's steps). Only the baked
    texels go up and the finished maps come down: no host image is built or filled."""
    import torch

    dev = torch.device(device)
    out, grown = dilate_texels_tensor(
        torch.as_tensor(np.ascontiguousarray(texel_bytes, dtype=np.uint8), device=dev),
        torch.as_tensor(np.ascontiguousarray(flat), device=dev),
        size,
        rounds,
    )
    out_np, grown_np = to_numpy_all([out, grown])
    return out_np, grown_np


def dilate_texels_tensor(texels: Any, flat: Any, size: int, rounds: int) -> tuple[Any, Any]:
    """:func:`dilate_texels` on tensors already on the device (texels (k, c) uint8, flat (k,)
    integer), its answers left there: the bake reads back only the maps, not ``grown``."""
    import torch

    dev = texels.device
    channels = texels.shape[1]
    index = flat.long()
    values = torch.zeros((size * size, channels), dtype=torch.uint8, device=dev)
    values[index] = texels
    filled = torch.zeros(size * size, dtype=torch.bool, device=dev)
    filled[index] = True
    out, grown = dilate_tensor(
        values.reshape(size, size, channels), filled.reshape(size, size), rounds
    )
    if len(flat):  # float64 sums of bytes are exact, so the mean rounds as numpy's does
        mean = torch.round(texels.double().mean(dim=0)).to(torch.uint8)
        out = torch.where(grown[:, :, None], out, mean)
    return out, grown
