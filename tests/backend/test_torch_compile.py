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


def test_a_compiled_call_waits_while_another_thread_compiles() -> None:
    """Compiling traces with torch.fx, whose flag is process-wide: dynamo refuses to enter a
    compiled function on any thread meanwhile. The stand-in compile below really holds
    torch.fx's tracing state (a symbolic trace paused half-way) while another thread calls a
    real ``torch.compile``d function; without the turn-taking that call raises."""
    import threading

    from backend.torch_compile import compile_or_eager

    def double(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    ready = compile_or_eager(torch.compile(double, backend="eager"), double, "double")
    assert torch.equal(ready(torch.ones(2)), torch.full((2,), 2.0))  # compiled, proven
    tracing, other_called = threading.Event(), threading.Event()

    def traced(x: torch.Tensor) -> torch.Tensor:
        tracing.set()  # inside torch.fx's trace: its process-wide flag is on
        other_called.wait(timeout=1.0)  # the other thread's call is not let in meanwhile
        return x + 1

    def compile_like(x: torch.Tensor) -> torch.fx.GraphModule:
        return torch.fx.symbolic_trace(traced)

    compiling = compile_or_eager(compile_like, traced, "a compile")
    worker = threading.Thread(target=compiling, args=(torch.ones(1),))
    worker.start()
    assert tracing.wait(timeout=10.0)
    outcome: list[object] = []
    try:
        outcome.append(ready(torch.ones(3)))
    except RuntimeError as error:  # dynamo: "Detected that you are using FX to ..."
        outcome.append(error)
    finally:
        other_called.set()
        worker.join()
    assert len(outcome) == 1 and isinstance(outcome[0], torch.Tensor), outcome
    assert torch.equal(outcome[0], torch.full((3,), 2.0))
