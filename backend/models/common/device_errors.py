"""CUDA out-of-memory inside a model, turned into the protocol's ``CUDA_OUT_OF_MEMORY``.

Every adapter wraps its load and generate in :func:`typed_device_errors` with a hint naming its
own memory knobs, so the panel can say what to lower; the CUDA cache is emptied first so the
worker's next job starts from a clean pool. Anything else passes through unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from backend.torch_loaded import loaded_torch
from shared_protocol.errors import ErrorCode, ProtocolError

DEFAULT_HINT = (
    "Lower the grid size, resolution or step count, close other GPU programs, or run in float16."
)


@contextlib.contextmanager
def typed_device_errors(model_id: str, hint: str = DEFAULT_HINT) -> Iterator[None]:
    """Re-raise CUDA out-of-memory inside the block as ``CUDA_OUT_OF_MEMORY`` with ``hint``."""
    try:
        yield
    except Exception as error:
        # torch is looked up, not imported: a model that never imported it cannot run out of
        # CUDA memory, and the built-in models must not pay for the import.
        torch = loaded_torch()
        if torch is None or not isinstance(error, torch.cuda.OutOfMemoryError):
            raise
        torch.cuda.empty_cache()
        raise ProtocolError(
            ErrorCode.CUDA_OUT_OF_MEMORY,
            f"{model_id}: the GPU ran out of memory ({str(error).splitlines()[0]})",
            hint=hint,
        ) from error
