"""pipeline.py on tiny random models in the official layout: the structure stage end to end
(conditioning, CPU noise after the seed, the flow, the occupied voxels), multi-image and text.

Until the structured-latent networks and the mesh extraction are in this build the run stops
after drawing the latent noise; with them it must reach the mesh."""

from __future__ import annotations

import pytest
import torch

from backend.models.trellis.config import SS_FLOW
from backend.models.trellis.pipeline import (
    TrellisPipeline,
    TrellisRequest,
    structured_latent_available,
)
from backend.models.trellis.sampler import (
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
    forward_count,
)
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.trellis.conftest import TinyModel, cutout

FAST = SamplerSettings(3, 5.0, (0.5, 1.0), 3.0)
LAST_STEP = "mesh" if structured_latent_available() else "structure"


def load(model: TinyModel, **options) -> TrellisPipeline:
    components = model.components
    shared = [components["decoders"]] if "decoders" in components else []
    return TrellisPipeline.from_folder(
        model.folder, conditioner_folder=components.get("dinov2") or components["clip"],
        shared_folders=shared, dtype=torch.float32, **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def image_pipeline(tiny_image: TinyModel) -> TrellisPipeline:
    return load(tiny_image)


class Stages:
    def __init__(self) -> None:
        self.reports: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, step: int, total: int) -> None:
        self.reports.append((stage, step, total))


def test_an_image_run_reaches_the_occupied_voxels(image_pipeline: TrellisPipeline) -> None:
    stages = Stages()
    request = TrellisRequest(images=(cutout(),), seed=7, structure=FAST, latent=FAST)
    output = image_pipeline.run(request, stages)
    assert output.stopped_after == LAST_STEP
    assert output.cond.shape == (1, 21, 32) and torch.all(output.neg_cond == 0)
    coords = output.coords
    assert coords.dtype == torch.int32 and coords.shape[1] == 4 and len(coords) > 0
    assert coords[:, 0].eq(0).all() and coords[:, 1:].min() >= 0 and coords[:, 1:].max() < 16
    keys = coords[:, 1] * 256 + coords[:, 2] * 16 + coords[:, 3]
    assert torch.all(keys[1:] > keys[:-1])  # sorted, unique
    names = [stage for stage, _, _ in stages.reports]
    assert names[0] == "condition" and "structure" in names
    steps = [step for stage, step, _ in stages.reports if stage == "structure"]
    assert steps == sorted(steps) and steps[-1] == FAST.steps + 1


def test_both_noises_come_from_the_cpu_rng_seeded_after_conditioning(
    image_pipeline: TrellisPipeline,
) -> None:
    request = TrellisRequest(images=(cutout(),), seed=1234, structure=FAST, latent=FAST)
    output = image_pipeline.run(request, Stages())
    torch.manual_seed(1234)  # upstream: manual_seed, randn(structure), ..., randn(latent)
    structure_noise = torch.randn(1, 8, 4, 4, 4)
    latent_noise = torch.randn(len(output.coords), 8)
    assert torch.equal(output.latent_noise, latent_noise)
    flow = image_pipeline.networks[SS_FLOW]
    expected = FlowEulerGuidanceIntervalSampler().sample(
        flow, structure_noise, output.cond, output.neg_cond, FAST
    )
    assert torch.allclose(output.structure_latent, expected, atol=1e-6)
    again = image_pipeline.run(request, Stages())
    assert torch.equal(again.coords, output.coords)


class CountingFlow(torch.nn.Module):
    """The structure flow, counting its calls and the conditions it sees."""

    def __init__(self, flow: torch.nn.Module) -> None:
        super().__init__()
        self.flow, self.resolution, self.in_channels = flow, flow.resolution, flow.in_channels
        self.conditions: list[int] = []

    def forward(self, x, t, cond):
        self.conditions.append(cond.shape[0])
        return self.flow(x, t, cond)


@pytest.mark.parametrize("mode", ["stochastic", "multidiffusion"])
def test_several_views_condition_the_flow_in_both_modes(
    image_pipeline: TrellisPipeline, mode: str
) -> None:
    views = (cutout(), cutout(box=(10, 10, 54, 40)), cutout(box=(24, 4, 40, 60)))
    counting = CountingFlow(image_pipeline.networks[SS_FLOW])
    image_pipeline.networks[SS_FLOW] = counting
    try:
        request = TrellisRequest(images=views, seed=2, structure=FAST, latent=FAST,
                                 multi_image=mode)  # fmt: skip
        output = image_pipeline.run(request, Stages())
    finally:
        image_pipeline.networks[SS_FLOW] = counting.flow
    assert output.cond.shape == (3, 21, 32) and output.neg_cond.shape == (1, 21, 32)
    assert len(counting.conditions) == forward_count(FAST, images=3, mode=mode)
    assert set(counting.conditions) == {1}  # each view (and the negative) a pass of its own


def test_a_text_run_takes_the_shared_decoders_and_clip(tiny_text: TinyModel) -> None:
    pipeline = load(tiny_text)
    output = pipeline.run(TrellisRequest(prompt="a small wooden chair", seed=3,
                                         structure=FAST, latent=FAST), Stages())  # fmt: skip
    assert output.stopped_after == LAST_STEP
    assert output.cond.shape == (1, 77, 32)
    assert torch.allclose(output.neg_cond, pipeline.conditioner.encode([""]))
    assert pipeline.default_settings()[0] == SamplerSettings(25, 5.0, (0.5, 1.0), 3.0)


def test_a_text_model_without_the_image_decoders_says_what_to_fetch(tiny_text: TinyModel) -> None:
    with pytest.raises(ProtocolError) as caught:
        TrellisPipeline.from_folder(tiny_text.folder,
                                    conditioner_folder=tiny_text.components["clip"])  # fmt: skip
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    assert "ss_dec_conv3d_16l8_fp16" in caught.value.info.message
