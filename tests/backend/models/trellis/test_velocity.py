"""velocity.py: guided pairs run as one batch give the sequential results (float32, 1e-5), with
one network call per guided step and no index rebuilding or host syncs after the first step."""

from __future__ import annotations

import torch

from backend.models.sparse import SparseTensor
from backend.models.trellis import testing
from backend.models.trellis.config import TINY_SS_FLOW
from backend.models.trellis.sampler import (
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
    guided_steps,
)
from backend.models.trellis.ss_flow import SparseStructureFlowModel
from backend.models.trellis.velocity import (
    DenseFlowVelocity,
    SparseFlowVelocity,
    batched_coords,
)
from tests.backend.models.sparse.reference import random_coords
from tests.backend.models.trellis.test_slat_flow import TINY, tiny_model

SETTINGS = SamplerSettings(6, 3.0, (0.5, 1.0), 3.0)  # guided and unguided steps both
SYNCING_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::unique",
               "aten::_unique2", "aten::searchsorted", "aten::sort", "aten::bincount")  # fmt: skip


def voxels(count: int = 60, seed: int = 1) -> torch.Tensor:
    coords = random_coords([count], TINY["resolution"], torch.Generator().manual_seed(seed))
    order = torch.argsort((coords[:, 1] * 64 + coords[:, 2]) * 64 + coords[:, 3])
    return coords[order]


def conditions(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    cond = torch.randn(1, 5, TINY["cond_channels"], generator=generator)
    return cond, torch.zeros_like(cond)


class CountingFlow(torch.nn.Module):
    """The flow, counting its calls and the batch sizes it saw."""

    def __init__(self, flow: torch.nn.Module) -> None:
        super().__init__()
        self.flow, self.batches = flow, []

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.batches.append(cond.shape[0])
        return self.flow(x, t, cond)


def test_batched_slat_sampling_equals_two_passes_with_one_call_per_step() -> None:
    flow, coords = tiny_model(seed=3), voxels()
    cond, neg = conditions()
    generator = torch.Generator().manual_seed(4)
    noise = torch.randn(len(coords), TINY["in_channels"], generator=generator)

    def plain(feats: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return flow(SparseTensor(feats, coords), t, c).feats  # no many(): upstream's two passes

    sequential = FlowEulerGuidanceIntervalSampler().sample(plain, noise, cond, neg, SETTINGS)
    counting = CountingFlow(flow)
    batched = FlowEulerGuidanceIntervalSampler(max_batch=2).sample(
        SparseFlowVelocity(counting, coords), noise, cond, neg, SETTINGS
    )
    assert torch.allclose(batched, sequential, rtol=0, atol=1e-5 * sequential.abs().max())
    assert len(counting.batches) == SETTINGS.steps  # one call per step, guided or not
    assert counting.batches.count(2) == guided_steps(SETTINGS) > 0


def test_batched_structure_sampling_equals_two_passes() -> None:
    flow = testing.randomize(SparseStructureFlowModel(TINY_SS_FLOW), seed=5)
    flow.convert_torso(torch.float32)
    generator = torch.Generator().manual_seed(6)
    side = TINY_SS_FLOW.resolution
    noise = torch.randn(1, TINY_SS_FLOW.in_channels, side, side, side, generator=generator)
    cond = torch.randn(1, 5, TINY_SS_FLOW.cond_channels, generator=generator)
    neg = torch.zeros_like(cond)
    with torch.no_grad():
        sequential = FlowEulerGuidanceIntervalSampler().sample(flow, noise, cond, neg, SETTINGS)
        counting = CountingFlow(flow)
        batched = FlowEulerGuidanceIntervalSampler().sample(
            DenseFlowVelocity(counting), noise, cond, neg, SETTINGS
        )
    assert torch.allclose(batched, sequential, rtol=0, atol=1e-5 * sequential.abs().max())
    assert len(counting.batches) == SETTINGS.steps


def test_uneven_batches_take_the_sparse_path_and_match_single_samples() -> None:
    # Two samples of different voxel counts (the sparse-token path) against each one alone
    # (the dense-token path): the two token layouts compute the same thing.
    flow = tiny_model(seed=7)
    first, second = voxels(50, seed=8), voxels(70, seed=9)
    both = torch.cat([first, second.clone()])
    both[len(first) :, 0] = 1
    generator = torch.Generator().manual_seed(10)
    feats = torch.randn(len(both), TINY["in_channels"], generator=generator)
    conds = torch.randn(2, 5, TINY["cond_channels"], generator=generator)
    t = torch.tensor([300.0, 300.0])
    with torch.no_grad():
        joint = flow(SparseTensor(feats, both), t, conds).feats
        alone = [
            flow(SparseTensor(feats[rows], c), t[:1], conds[i : i + 1]).feats
            for i, (rows, c) in enumerate(((slice(0, 50), first), (slice(50, None), second)))
        ]
    assert torch.allclose(joint, torch.cat(alone), rtol=0, atol=1e-5 * joint.abs().max())


def test_batched_coords_repeat_the_voxels_as_batch_elements() -> None:
    coords = voxels(10)
    doubled = batched_coords(coords, 3)
    assert doubled.shape == (30, 4) and doubled.dtype == torch.int32
    assert doubled[:, 0].tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert torch.equal(doubled[20:, 1:], coords[:, 1:])


def test_later_steps_rebuild_nothing_and_never_wait_on_the_host() -> None:
    flow, coords = tiny_model(seed=11), voxels()
    cond, neg = conditions()
    velocity = SparseFlowVelocity(flow, coords)
    x = torch.randn(len(coords), TINY["in_channels"])
    conds, t = torch.cat([cond, neg]), torch.full((2,), 500.0)
    with torch.no_grad():
        velocity.many(x, t, conds)  # first guided step: neighbour maps, downsampling, ...
        velocity(x, t[:1], cond)  # first unguided step: those of the one-sample batch
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            velocity.many(x, t, conds)
            velocity(x, t[:1], cond)
    called = {event.key for event in prof.key_averages()}
    assert "aten::scaled_dot_product_attention" in called  # the profile saw the forward
    assert not called & set(SYNCING_OPS), sorted(called & set(SYNCING_OPS))
