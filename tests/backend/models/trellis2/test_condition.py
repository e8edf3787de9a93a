"""TRELLIS.2's flows with conditions prepared once per run (backend.models.trellis.condition):
equal to the plain computation in float32 for the image condition and for the zeros negative,
whose cross attention (q/k RMS-normed here) never projects queries."""

from __future__ import annotations

import torch

from backend.models.sparse import SparseTensor, fastpath
from backend.models.trellis.condition import PreparedCondition
from backend.models.trellis2 import testing
from backend.models.trellis2.config import SHAPE_FLOW_512, SS_FLOW
from tests.backend.models.sparse.reference import random_coords
from tests.backend.models.trellis.test_condition import Calls, close


def flow_and_input(role: str) -> tuple[torch.nn.Module, object]:
    flow = testing.tiny_network(role)
    flow.convert_torso(torch.float32)
    generator = torch.Generator().manual_seed(21)
    if role == SS_FLOW:
        side = flow.resolution
        return flow, torch.randn(1, flow.in_channels, side, side, side, generator=generator)
    coords = random_coords([40], flow.resolution, generator)
    return flow, SparseTensor(torch.randn(40, flow.in_channels, generator=generator), coords)


def run(flow: torch.nn.Module, x: object, cond: torch.Tensor | PreparedCondition) -> torch.Tensor:
    out = flow(x, torch.full((1,), 650.0), cond)
    return out.feats if isinstance(out, SparseTensor) else out


def test_prepared_conditions_equal_plain_and_the_zeros_negative_skips_queries() -> None:
    for role in (SS_FLOW, SHAPE_FLOW_512):
        flow, x = flow_and_input(role)
        assert flow.blocks[0].cross_attn.qk_rms_norm  # the released TRELLIS.2 flows' setting
        generator = torch.Generator().manual_seed(22)
        cond = torch.randn(1, 7, testing.TINY_COND_CHANNELS, generator=generator)
        for c, queried in ((cond, True), (torch.zeros_like(cond), False)):
            with torch.no_grad():
                with fastpath.plain():
                    plain = run(flow, x, c)
                to_q = Calls([block.cross_attn.to_q for block in flow.blocks])
                fast = run(flow, x, PreparedCondition(c, flow.blocks, flow.dtype))
                to_q.close()
            assert close(fast, plain), role
            assert bool(to_q.shapes) == queried, role
