"""The one table from the dtype names the protocol carries to torch dtypes.

Adapters receive ``dtype`` as a string (``"float32"``, ``"float16"``, ``"bfloat16"``) from the
job; this module turns it into the torch dtype, and a name outside the table into a coded error
naming the field, so every adapter rejects a bad dtype the same way.
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
