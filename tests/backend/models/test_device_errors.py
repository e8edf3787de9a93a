"""typed_device_errors: CUDA out-of-memory becomes a coded error with the adapter's hint."""

from __future__ import annotations

import pytest
import torch

from backend.models.common.device_errors import typed_device_errors
from shared_protocol.errors import ErrorCode, ProtocolError


def test_out_of_memory_becomes_a_coded_error_with_the_hint() -> None:
    with pytest.raises(ProtocolError) as caught, typed_device_errors("m", hint="lower x"):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB\nmore")
    assert caught.value.code == ErrorCode.CUDA_OUT_OF_MEMORY
    assert caught.value.hint == "lower x"
    assert str(caught.value).startswith("m: the GPU ran out of memory (CUDA out of memory.")
    assert "more" not in str(caught.value)


def test_other_errors_pass_through() -> None:
    with pytest.raises(ValueError), typed_device_errors("m"):
        raise ValueError("not memory")
