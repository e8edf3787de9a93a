"""GraphedForward: eager where graphs cannot run, and on CUDA the same numbers as eager."""

from __future__ import annotations

import pytest
import torch

from backend.models.common.cuda_graph import GraphedForward


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(16, 32)
        self.b = torch.nn.Linear(32, 4)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.nn.functional.gelu(self.a(x)) * scale
        return self.b(hidden), hidden.sum(dim=-1)


def _check(device: str, dtype: torch.dtype | None) -> GraphedForward:
    torch.manual_seed(0)
    net = _Net().to(device).eval()
    graphed = GraphedForward(net, autocast_dtype=dtype)
    for _ in range(3):  # new values each call: the replay must read them, not the captured ones
        x, scale = torch.randn(5, 16, device=device), torch.rand(1, device=device)
        with torch.no_grad():
            out, total = graphed(x, scale)
            with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
                ref_out, ref_total = net(x, scale)
        assert torch.equal(out, ref_out) and torch.equal(total, ref_total)
    return graphed


def test_cpu_and_autograd_run_eagerly() -> None:
    graphed = _check("cpu", None)
    assert graphed._captured == {}  # nothing captured off CUDA
    net = _Net()
    x = torch.randn(2, 16, requires_grad=True)
    out, _ = GraphedForward(net)(x, torch.ones(1))
    out.sum().backward()  # with autograd on it is the plain module call
    assert x.grad is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs on the GPU box)")
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_cuda_replay_matches_eager(dtype) -> None:
    graphed = _check("cuda", dtype)
    assert len(graphed._captured) == 1 and next(iter(graphed._captured.values())) is not None
