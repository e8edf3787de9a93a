"""The dtype-name table shared by the adapters."""

from __future__ import annotations

import pytest
import torch

from backend.models.common.torch_dtypes import DTYPES, torch_dtype
from shared_protocol.errors import ErrorCode, ProtocolError


def test_names_map_to_torch_dtypes() -> None:
    assert torch_dtype("float16") is torch.float16
    assert torch_dtype("bfloat16") is torch.bfloat16
    assert set(DTYPES) == {"float32", "float16", "bfloat16"}


def test_unknown_name_is_a_coded_error() -> None:
    with pytest.raises(ProtocolError) as caught:
        torch_dtype("float8")
    assert caught.value.code == ErrorCode.INVALID_PARAMETER and caught.value.field == "dtype"
