"""The one table from dtype names (``"float32"``, ``"float16"``, ``"bfloat16"``) to torch dtypes.

The dtype is not part of the protocol: the service chooses it when it loads a model
(``ModelCache.acquire``: the adapter's ``cuda_dtype`` on a GPU, float32 on the CPU) and passes
its name to ``ModelAdapter.load``. ``torch_dtype`` turns the name into the torch dtype, and a
name outside the table into a coded error.
"""

from __future__ import annotations

import torch

from shared_protocol.errors import ErrorCode, ProtocolError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` / ``"float16"`` / ``"bfloat16"`` -> the torch dtype; anything else errors."""
    if name not in DTYPES:
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}",
            field="dtype",
        )
    return DTYPES[name]
