"""torch.compile of the flows' transformer blocks, the same maths as eager.

The casts, norms, modulation and gates around each block's matmuls and attention fuse into a
few kernels (on the GPU the flows spend a large share in such small elementwise kernels). Token
counts differ per asset, so the blocks are compiled for dynamic shapes; each intermediate is
rounded to the torso dtype as eager does (``emulate_precision_casts``), so compiled flows follow
eager's trajectory instead of a merely close one. The first calls pay the compilation
(about 40 s per flow pair on an H200; inductor's on-disk cache shortens later starts).

Measured on an H200 (benchmarks/results/trellis_fast_h200.json): TRELLIS's two flows 5.53 s
eager -> 4.49 s compiled at 15k tokens. When: ``backend.torch_compile.should_compile``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from backend.torch_compile import COMPILE_ENV, compile_or_eager, should_compile

__all__ = ["COMPILE_ENV", "compile_blocks", "should_compile"]


def compile_blocks(networks: Iterable[nn.Module]) -> None:
    """Compile every ``network.blocks[i]`` in place, as ``nn.Module.compile`` does (the module
    calls ``_compiled_call_impl`` when set), falling back to eager if compiling fails."""
    import torch
    import torch._inductor.config as inductor

    inductor.emulate_precision_casts = True
    for network in networks:
        for index, block in enumerate(network.blocks):
            compiled = torch.compile(block._call_impl, dynamic=True)
            block._compiled_call_impl = compile_or_eager(
                compiled, block._call_impl, f"{type(network).__name__}.blocks[{index}]"
            )
