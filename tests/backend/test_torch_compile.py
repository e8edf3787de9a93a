"""``DREAMCAD_COMPILE``: when the backend compiles its torch code."""

from __future__ import annotations

import pytest
import torch

from backend.torch_compile import COMPILE_ENV, should_compile


@pytest.mark.parametrize(
    ("value", "device", "expected"),
    [
        (None, "cpu", False),  # auto: never on the CPU (slower there, and CI pays the compile)
        ("auto", "cpu", False),
        ("1", "cpu", True),
        ("on", "cpu", True),
        ("0", "cuda:0", False),
        ("off", "cuda", False),
    ],
)
def test_policy(
    monkeypatch: pytest.MonkeyPatch, value: str | None, device: str, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv(COMPILE_ENV, raising=False)
    else:
        monkeypatch.setenv(COMPILE_ENV, value)
    assert should_compile(device) is expected


def test_auto_on_cuda_follows_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.utils._triton import has_triton

    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert should_compile(torch.device("cuda", 0)) is has_triton()
