"""Half-precision copies of the encoder's matmul weights, swapped in for autocast runs.

Under ``torch.autocast`` every linear and convolution casts its float32 weight and bias to the
half dtype at each call: one cast kernel per tensor, about 230 per TripoSR encode, a quarter of
the encode's launches in bf16, where the encode is bound by launches rather than arithmetic.
:func:`half_weights` casts them once (per model and dtype) and swaps the copies in for the
duration of a forward pass; autocast's cast of a tensor already in its dtype is a no-op, and
the copies are made with the same rounding autocast uses, so the output is bit-identical.

Only the parts that run under autocast are covered (image tokenizer, backbone, upsampler); the
field decoder runs outside it in float32. The float32 weights stay (float32 runs and loading
need them); the copies cost half the encoder's float32 size in device memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

# What autocast runs in the half dtype (its "lower precision" op list) among TripoSR's modules.
CAST_MODULES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
ENCODER_PARTS = ("image_tokenizer", "backbone", "post_processor")
HALF_DTYPES = (torch.float16, torch.bfloat16)
NEVER_RUN = "image_tokenizer.model.pooler"  # kept for strict loading, never evaluated

Slot = tuple[nn.Module, str, torch.Tensor]


def _copies(model: nn.Module, dtype: torch.dtype) -> list[Slot]:
    """(module, parameter name, half copy) for every weight and bias autocast would cast."""
    slots: list[Slot] = []
    unused = set(model.get_submodule(NEVER_RUN).modules())
    for part in ENCODER_PARTS:
        for module in getattr(model, part).modules():
            if isinstance(module, CAST_MODULES) and module not in unused:
                for name, param in module.named_parameters(recurse=False):
                    slots.append((module, name, param.detach().to(dtype)))
    return slots


@contextlib.contextmanager
def half_weights(model: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Run the block with the encoder's matmul weights in ``dtype`` (a half dtype; anything
    else leaves the model as it is). Made on first use, kept on the model for later runs."""
    if dtype not in HALF_DTYPES:
        yield
        return
    cache: dict[tuple[torch.dtype, torch.device], list[Slot]] = model.__dict__.setdefault(
        "_half_weight_copies", {}
    )
    device = next(model.parameters()).device
    key = (dtype, device)
    if key not in cache:
        cache[key] = _copies(model, dtype)
    slots = cache[key]
    originals = [module._parameters[name] for module, name, _ in slots]
    try:
        for module, name, copy in slots:
            module._parameters[name] = copy  # type: ignore[assignment]
        yield
    finally:
        for (module, name, _), original in zip(slots, originals, strict=True):
            module._parameters[name] = original
