"""TRELLIS's mixed precision: which weights are half in the released files, and the casts.

Upstream's ``use_fp16`` converts only a network's *torso* (its transformer blocks, residual
blocks, up-sampling blocks) and, inside it, only linear and convolution layers; input and
output layers, norms, the timestep embedder, RMS-norm gammas and buffers stay float32. That is
how the ``*_fp16.safetensors`` files are stored, and a torso runs in its weights' dtype while the
rest runs in float32. :func:`cast_torso` is that conversion for any dtype, so one loaded
network serves float16 (the stored dtypes, upstream's default on CUDA), bfloat16 and float32
(upstream's ``convert_to_fp32``, what the CPU runs).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_DENSE_TYPES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
# Upstream's sparse layers take part too; ours (backend.models.sparse) keep upstream's names.
_SPARSE_NAMES = frozenset({"SparseConv3d", "SparseInverseConv3d", "SparseLinear"})


def is_torso_layer(module: nn.Module) -> bool:
    """A layer whose parameters upstream stores in half precision when inside a torso."""
    return isinstance(module, _DENSE_TYPES) or type(module).__name__ in _SPARSE_NAMES


def cast_torso(torso: Iterable[nn.Module], dtype: torch.dtype) -> None:
    """Cast the parameters of every linear/conv layer under ``torso`` to ``dtype`` in place."""
    for root in torso:
        for module in root.modules():
            if is_torso_layer(module):
                for parameter in module.parameters():
                    parameter.data = parameter.data.to(dtype)
