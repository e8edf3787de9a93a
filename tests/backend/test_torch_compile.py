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


def test_a_compile_failure_falls_back_to_eager_once_and_says_why(caplog) -> None:
    from backend.torch_compile import compile_or_eager

    calls = {"compiled": 0, "eager": 0}

    def broken(x: int) -> int:
        calls["compiled"] += 1
        raise RuntimeError("Failed to find C compiler")

    def eager(x: int) -> int:
        calls["eager"] += 1
        return x + 1

    run = compile_or_eager(broken, eager, "a block")
    with caplog.at_level("WARNING"):
        assert [run(1), run(2), run(3)] == [2, 3, 4]
    assert calls == {"compiled": 1, "eager": 3}  # tried once, then eager for good
    assert "torch.compile of a block failed" in caplog.text and COMPILE_ENV in caplog.text


def test_errors_after_compiling_worked_and_out_of_memory_are_the_callers() -> None:
    from backend.torch_compile import compile_or_eager

    state = {"n": 0}

    def compiled(x: int) -> int:
        state["n"] += 1
        if state["n"] == 2:
            raise ValueError("a real error in the model")
        return x

    run = compile_or_eager(compiled, lambda x: -x, "a block")
    assert run(5) == 5  # compiled works: proven
    with pytest.raises(ValueError, match="real error"):
        run(5)  # no silent eager retry once compiled code has worked
    oom = compile_or_eager(lambda x: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")),
                           lambda x: x, "b")  # fmt: skip
    with pytest.raises(torch.OutOfMemoryError):
        oom(1)  # out of memory before any success is the job's, not the compiler's
