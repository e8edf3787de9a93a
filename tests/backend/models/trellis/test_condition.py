"""condition.py and sparse.fastpath: every exact shortcut of the flows against the plain
computation (CPU, float32 unless said), and proof that each shortcut is really taken:
the zeros negative's cross attention never projects queries, a condition's keys/values are
computed once per sampling run, LayerNorm32 without affine runs on half inputs directly."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.models.sparse import fastpath
from backend.models.sparse.norm import LayerNorm32
from backend.models.trellis import testing
from backend.models.trellis.condition import (
    ConditionCache,
    PreparedCondition,
    constant_samples,
    runs,
)
from backend.models.trellis.config import TINY_SS_FLOW
from backend.models.trellis.sampler import (
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
    forward_count,
)
from backend.models.trellis.ss_flow import SparseStructureFlowModel
from backend.models.trellis.velocity import DenseFlowVelocity, SparseFlowVelocity
from tests.backend.models.trellis.test_slat_flow import TINY, tiny_model
from tests.backend.models.trellis.test_velocity import voxels

SETTINGS = SamplerSettings(6, 3.0, (0.5, 1.0), 3.0)  # guided and unguided steps


def close(fast: Tensor, plain: Tensor, rel: float = 1e-5) -> bool:
    scale = plain.abs().max()
    return bool(torch.isfinite(fast).all()) and float((fast - plain).abs().max()) <= rel * scale


class Calls:
    """Records the leading shape of every input a set of modules sees."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self._handles = [m.register_forward_hook(self._record) for m in modules]

    def _record(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        self.shapes.append(tuple(inputs[0].shape[:-1]))

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def ss_flow(seed: int = 5) -> SparseStructureFlowModel:
    flow = testing.randomize(SparseStructureFlowModel(TINY_SS_FLOW), seed=seed)
    flow.convert_torso(torch.float32)
    return flow.eval()


def ss_inputs(batch: int, seed: int = 6) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    side, channels = TINY_SS_FLOW.resolution, TINY_SS_FLOW.in_channels
    x = torch.randn(batch, channels, side, side, side, generator=generator)
    cond = torch.randn(batch, 5, TINY_SS_FLOW.cond_channels, generator=generator)
    return x, torch.full((batch,), 700.0), cond


def test_runs_and_constant_samples() -> None:
    assert list(runs([False, True, True, False])) == [(0, 1, False), (1, 3, True), (3, 4, False)]
    assert list(runs([True])) == [(0, 1, True)]
    cond = torch.randn(3, 4, 6)
    cond[1] = 0
    cond[2] = cond[2, :1]  # equal tokens, not zeros: constant too
    assert constant_samples(cond) == (False, True, True)


def test_zeros_negative_batched_with_the_condition_skips_its_cross_attention() -> None:
    # Dense tokens, samples [image, zeros, another image]: runs of attending / constant samples.
    flow = ss_flow()
    x, t, cond = ss_inputs(3)
    cond[1] = 0
    with torch.no_grad(), fastpath.plain():
        plain = flow(x, t, cond)
    to_q = Calls([block.cross_attn.to_q for block in flow.blocks])
    with torch.no_grad():
        fast = flow(x, t, PreparedCondition(cond, flow.blocks, flow.dtype))
    to_q.close()
    assert close(fast, plain)
    # Queries projected for the two image samples only, one run each, in every block.
    assert to_q.shapes == [(1, 64), (1, 64)] * len(flow.blocks)


def test_zeros_negative_alone_never_projects_queries() -> None:
    flow = ss_flow()
    x, t, cond = ss_inputs(1)
    neg = torch.zeros_like(cond)
    with torch.no_grad(), fastpath.plain():
        plain = flow(x, t, neg)
    to_q = Calls([block.cross_attn.to_q for block in flow.blocks])
    with torch.no_grad():
        fast = flow(x, t, PreparedCondition(neg, flow.blocks, flow.dtype))
    to_q.close()
    assert close(fast, plain)
    assert to_q.shapes == []


def test_varying_negative_still_attends() -> None:
    # A negative whose tokens differ (a text model's empty prompt) takes no shortcut.
    flow = ss_flow()
    x, t, cond = ss_inputs(2)
    with torch.no_grad(), fastpath.plain():
        plain = flow(x, t, cond)
    to_q = Calls([block.cross_attn.to_q for block in flow.blocks])
    with torch.no_grad():
        fast = flow(x, t, PreparedCondition(cond, flow.blocks, flow.dtype))
    to_q.close()
    assert close(fast, plain)
    assert to_q.shapes == [(2, 64)] * len(flow.blocks)


def slat_run(
    flow: nn.Module, images: int = 1, mode: str = "stochastic", seed: int = 4
) -> tuple[Tensor, Tensor, Calls, Calls]:
    """One tiny SLat sampling, fast then plain: (fast, plain, to_kv calls, to_q calls)."""
    coords = voxels()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(coords), TINY["in_channels"], generator=generator)
    cond = torch.randn(images, 5, TINY["cond_channels"], generator=generator)
    neg = torch.zeros_like(cond[:1])
    sampler = FlowEulerGuidanceIntervalSampler(max_batch=2)
    with torch.no_grad(), fastpath.plain():
        plain = sampler.sample(SparseFlowVelocity(flow, coords), noise, cond, neg, SETTINGS, mode)
    to_kv = Calls([block.cross_attn.to_kv for block in flow.blocks])
    to_q = Calls([block.cross_attn.to_q for block in flow.blocks])
    with torch.no_grad():
        fast = sampler.sample(SparseFlowVelocity(flow, coords), noise, cond, neg, SETTINGS, mode)
    to_kv.close(), to_q.close()
    return fast, plain, to_kv, to_q


def test_slat_sampling_prepares_each_condition_once_and_equals_plain() -> None:
    flow = tiny_model(seed=3)
    fast, plain, to_kv, to_q = slat_run(flow)
    assert close(fast, plain)
    blocks = len(flow.blocks)
    # Two condition tensors per run ([image, zeros] of the guided steps, [image] of the
    # others), each projected once per block -- not once per step (the plain path's
    # forward_count(SETTINGS) times).
    assert len(to_kv.shapes) == 2 * blocks < forward_count(SETTINGS) * blocks
    # Queries: only the image sample's tokens, guided step or not.
    assert to_q.shapes and {shape[0] for shape in to_q.shapes} == {1}
    assert len(to_q.shapes) == SETTINGS.steps * blocks


def test_multi_image_sampling_equals_plain() -> None:
    flow = tiny_model(seed=12)
    for mode in ("stochastic", "multidiffusion"):
        fast, plain, to_kv, _ = slat_run(flow, images=2, mode=mode)
        assert close(fast, plain), mode
        assert len(to_kv.shapes) <= 4 * len(flow.blocks)


def test_structure_sampling_equals_plain() -> None:
    flow = ss_flow(seed=13)
    x, _, cond = ss_inputs(1, seed=14)
    neg = torch.zeros_like(cond)
    sampler = FlowEulerGuidanceIntervalSampler(max_batch=2)
    with torch.no_grad(), fastpath.plain():
        plain = sampler.sample(DenseFlowVelocity(flow), x, cond, neg, SETTINGS)
    with torch.no_grad():
        fast = sampler.sample(DenseFlowVelocity(flow), x, cond, neg, SETTINGS)
    assert close(fast, plain)


def test_half_precision_flow_stays_within_rounding_of_plain() -> None:
    # The half-only shortcuts (LayerNorm32 on half inputs, fused modulation) in bfloat16.
    flow = tiny_model(seed=15)
    flow.convert_torso(torch.bfloat16)
    coords = voxels()
    generator = torch.Generator().manual_seed(16)
    feats = torch.randn(len(coords), TINY["in_channels"], generator=generator)
    cond = torch.randn(1, 5, TINY["cond_channels"], generator=generator)
    conds, t = torch.cat([cond, torch.zeros_like(cond)]), torch.full((2,), 400.0)
    velocity = SparseFlowVelocity(flow, coords)
    with torch.no_grad():
        with fastpath.plain():
            plain = velocity.many(feats, t, conds)
        fast = velocity.many(feats, t, conds)
    assert close(fast, plain, rel=3e-2)  # bfloat16 keeps 8 bits: 2^-8 = 4e-3 per rounding


def test_layer_norm_on_half_inputs_reads_them_directly() -> None:
    norm = LayerNorm32(64, elementwise_affine=False, eps=1e-6)
    x = torch.randn(50, 64) * 3 + 1
    for dtype in (torch.float16, torch.bfloat16):
        half = x.to(dtype)
        with fastpath.plain():
            plain = norm(half)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            fast = norm(half)
        copies = {e.key for e in prof.key_averages()} & {"aten::to", "aten::_to_copy"}
        assert fast.dtype == dtype and not copies, copies
        resolution = torch.finfo(dtype).eps * float(plain.abs().max())
        assert float((fast.float() - plain.float()).abs().max()) <= resolution


def test_condition_cache_by_identity() -> None:
    flow = ss_flow()
    cache = ConditionCache(flow)
    cond = torch.randn(1, 5, TINY_SS_FLOW.cond_channels)
    first = cache(cond)
    assert isinstance(first, PreparedCondition) and cache(cond) is first
    assert cache(cond.clone()) is not first  # another tensor: prepared on its own
    cond.mul_(2)  # modified in place: prepared again
    assert cache(cond) is not first
    with fastpath.plain():
        assert cache(cond) is cond
    assert ConditionCache(nn.Identity())(cond) is cond  # not one of our flows
