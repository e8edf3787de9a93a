"""One switch for the exact shortcuts of the flow networks (on by default).

The shortcuts change no result beyond float rounding (tests compare each against the plain
computation): a condition's cross-attention keys/values computed once per sampling run, the
constant cross attention of a condition whose tokens are all equal (the zeros negative),
LayerNorms without affine run in the half-precision input dtype (float32 inside the kernel)
instead of through a float32 copy, and fused modulation. Benchmarks turn them off with
``plain()`` to time the plain path in the same process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_state = {"enabled": True}


def enabled() -> bool:
    return _state["enabled"]


@contextlib.contextmanager
def plain() -> Iterator[None]:
    """Run the block inside without any shortcut (upstream's order of operations)."""
    previous = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = previous
