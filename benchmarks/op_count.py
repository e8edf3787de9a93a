"""Counting the operators a piece of torch code runs: a device-independent measure of launches.

On a GPU, small stages (upstream's 8k-point field chunks, the bf16 encoder) are bound by how
many kernels the host launches, not by arithmetic. Counting the leaf operators that do work
(copies, matmuls, elementwise ops; not views, reshapes or allocations) on the CPU gives the same
number as the kernels a CUDA run would launch for them, so a change's launch saving can be
measured here and its GPU gain estimated (launches x a few microseconds each).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

# Operators that launch nothing themselves: views, metadata, allocation, and composites that
# only call other operators (``linear`` -> ``addmm``, ``reshape`` -> ``clone`` -> ``copy_``
# when it must copy). The walk looks through these to the operators they call.
_PASS_NAMES = (
    "alias", "as_strided", "chunk", "detach", "empty", "empty_like", "empty_strided", "expand",
    "lift_fresh", "narrow", "permute", "reshape", "_reshape_alias", "resolve_conj", "resolve_neg",
    "select", "slice", "split", "squeeze", "t", "to", "_to_copy", "transpose", "unbind",
    "unflatten", "unsqueeze", "view", "_unsafe_view", "flatten", "contiguous", "clone",
    "result_type", "linear", "matmul", "stack", "layer_norm", "group_norm",
    "scaled_dot_product_attention", "conv2d", "convolution", "_convolution",
    "conv_transpose2d", "dropout", "new_zeros", "new_empty", "zeros_like",
)
PASS_THROUGH = frozenset("aten::" + name for name in _PASS_NAMES)


def kernel_ops(run: Callable[[], object]) -> Counter[str]:
    """Operators of one call of ``run`` that do work, by name (a CPU profile).

    Counted: the outermost operator on each call path that is not in :data:`PASS_THROUGH`
    (``linear`` -> ``addmm`` counts one ``addmm``; the CPU's own bias copy inside ``addmm``
    is not counted, as cuBLAS fuses it).
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities) as profile:
        run()
    counts: Counter[str] = Counter()
    pending = [e for e in profile.events() if e.cpu_parent is None]
    while pending:
        event = pending.pop()
        if not event.name.startswith("aten::") or event.name in PASS_THROUGH:
            pending.extend(event.cpu_children)
        else:
            counts[event.name] += 1
    return counts
