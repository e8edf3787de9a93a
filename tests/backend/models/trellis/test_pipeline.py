"""pipeline.py on tiny random models in the official layout, end to end: conditioning, CPU noise
after the seed, both flows, the occupied voxels, the decoders, the mesh and its colour grid;
multi-image, text, progress through the decoders and the optional Gaussian decoder."""

from __future__ import annotations

import shutil

import pytest
import torch

from backend.models.sparse import SparseTensor
from backend.models.trellis.config import GAUSSIAN_DECODER, MESH_DECODER, SLAT_FLOW, SS_FLOW
from backend.models.trellis.mesh_extraction import features_to_mesh
from backend.models.trellis.pipeline import TrellisPipeline, TrellisRequest, decoder_blocks
from backend.models.trellis.sampler import (
    FlowEulerGuidanceIntervalSampler,
    SamplerSettings,
    forward_count,
)
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.trellis.conftest import TinyModel, cutout

FAST = SamplerSettings(3, 5.0, (0.5, 1.0), 3.0)
STAGES = ["condition", "structure", "latent", "decode", "mesh"]


def load(model: TinyModel, **options) -> TrellisPipeline:
    components = model.components
    shared = [components[n] for n in ("decoders", "gaussians") if n in components]
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

    def names(self) -> list[str]:
        return list(dict.fromkeys(stage for stage, _, _ in self.reports))


@pytest.fixture(scope="module")
def image_run(image_pipeline: TrellisPipeline) -> tuple:
    stages = Stages()
    request = TrellisRequest(images=(cutout(),), seed=7, structure=FAST, latent=FAST)
    return image_pipeline.run(request, stages), stages


def test_an_image_run_reaches_the_mesh(image_run) -> None:
    output, stages = image_run
    assert output.cond.shape == (1, 21, 32) and torch.all(output.neg_cond == 0)
    coords = output.coords
    assert coords.dtype == torch.int32 and coords.shape[1] == 4 and len(coords) > 0
    assert coords[:, 0].eq(0).all() and coords[:, 1:].min() >= 0 and coords[:, 1:].max() < 16
    keys = coords[:, 1] * 256 + coords[:, 2] * 16 + coords[:, 3]
    assert torch.all(keys[1:] > keys[:-1])  # sorted, unique
    assert output.latent.shape == (len(coords), 8)
    features = output.mesh_features
    assert features.feats.shape == (64 * len(coords), 101) and output.mesh_resolution == 64
    (mesh,) = output.meshes
    assert len(mesh.faces) > 0 and mesh.colours.shape == (len(mesh.vertices), 6)
    # In [-0.5, 0.5]^3, give or take the half-voxel deformation at the grid's faces.
    assert mesh.vertices.abs().max() <= 0.5 + 0.5 / 64
    assert 0 <= mesh.colours.min() <= mesh.colours.max() <= 1
    assert output.gaussians == []  # not asked
    assert stages.names() == STAGES
    for stage in STAGES:
        steps = [step / total for name, step, total in stages.reports if name == stage]
        assert steps == sorted(steps) and steps[-1] == 1.0, stage


def test_both_noises_come_from_the_cpu_rng_seeded_after_conditioning(
    image_pipeline: TrellisPipeline, image_run
) -> None:
    output, _ = image_run
    torch.manual_seed(7)  # upstream: manual_seed, randn(structure), ..., randn(latent)
    structure_noise = torch.randn(1, 8, 4, 4, 4)
    latent_noise = torch.randn(len(output.coords), 8)
    assert torch.equal(output.latent_noise, latent_noise)
    flow = image_pipeline.networks[SS_FLOW]
    expected = FlowEulerGuidanceIntervalSampler().sample(
        flow, structure_noise, output.cond, output.neg_cond, FAST
    )
    assert torch.allclose(output.structure_latent, expected, atol=1e-6)


def test_the_latent_is_the_flow_sample_de_normalised_and_decoded_to_the_mesh(
    image_pipeline: TrellisPipeline, image_run
) -> None:
    """Steps 4-6 redone by hand from the run's voxels and noise (research 1.5-1.6)."""
    output, _ = image_run
    flow = image_pipeline.networks[SLAT_FLOW]

    def velocity(feats, t, cond):
        return flow(SparseTensor(feats, output.coords.clone()), t, cond).feats

    sampled = FlowEulerGuidanceIntervalSampler().sample(
        velocity, output.latent_noise, output.cond, output.neg_cond, FAST
    )
    config = image_pipeline.config
    expected = sampled * torch.tensor(config.slat_std) + torch.tensor(config.slat_mean)
    # The run batches each guided pair (float rounding apart, the same maths): 1e-5 relative.
    assert torch.allclose(output.latent, expected, rtol=0, atol=1e-5 * expected.abs().max())
    assert not torch.allclose(output.latent, sampled, atol=1e-2)  # de-normalised, not raw
    features = image_pipeline.networks[MESH_DECODER](SparseTensor(expected, output.coords.clone()))
    assert torch.allclose(features.feats, output.mesh_features.feats, atol=1e-4)
    assert torch.equal(features.coords, output.mesh_features.coords)
    mesh = features_to_mesh(output.mesh_features.coords, output.mesh_features.feats, 64)
    assert torch.equal(mesh.faces, output.meshes[0].faces)
    assert torch.equal(mesh.vertices, output.meshes[0].vertices)


def test_a_run_is_reproducible_from_its_seed(image_pipeline: TrellisPipeline, image_run) -> None:
    output, _ = image_run
    again = image_pipeline.run(
        TrellisRequest(images=(cutout(),), seed=7, structure=FAST, latent=FAST), Stages()
    )
    assert torch.equal(again.coords, output.coords)
    assert torch.equal(again.meshes[0].faces, output.meshes[0].faces)


def test_gaussians_are_decoded_when_asked(image_pipeline: TrellisPipeline) -> None:
    stages = Stages()
    request = TrellisRequest(images=(cutout(),), seed=7, structure=FAST, latent=FAST,
                             gaussians=True)  # fmt: skip
    output = image_pipeline.run(request, stages)
    decoder = image_pipeline.networks[GAUSSIAN_DECODER]
    (gaussians,) = output.gaussians
    per_voxel = decoder.rep_config["num_gaussians"]
    assert gaussians.xyz.shape == (len(output.coords) * per_voxel, 3)
    decode = [(step, total) for stage, step, total in stages.reports if stage == "decode"]
    blocks = len(decoder_blocks(image_pipeline.networks[MESH_DECODER])) + len(
        decoder_blocks(decoder)
    )
    assert decode[-1] == (blocks + 2, blocks + 2)  # every block and each decoder's end


def test_a_cancel_in_the_decoders_stops_at_the_next_block(image_pipeline: TrellisPipeline) -> None:
    class StopError(Exception):
        pass

    calls = []
    mesh_decoder = image_pipeline.networks[MESH_DECODER]
    handle = mesh_decoder.out_layer.register_forward_hook(lambda *_: calls.append("out"))

    def progress(stage: str, step: int, total: int) -> None:
        if stage == "decode" and step == 2:
            raise StopError

    try:
        with pytest.raises(StopError):
            image_pipeline.run(TrellisRequest(images=(cutout(),), structure=FAST, latent=FAST),
                               progress)  # fmt: skip
    finally:
        handle.remove()
    assert calls == []  # the decoder never reached its output layer
    assert not mesh_decoder.blocks[0]._forward_hooks  # the progress hooks are removed


def test_asking_for_gaussians_without_their_decoder_fails_clearly(
    tiny_image: TinyModel, tmp_path
) -> None:
    folder = tmp_path / "image"
    shutil.copytree(tiny_image.folder, folder)
    for path in (folder / "ckpts").glob("slat_dec_gs_*"):
        path.unlink()
    pipeline = TrellisPipeline.from_folder(
        folder, conditioner_folder=tiny_image.components["dinov2"], dtype=torch.float32
    )
    assert not pipeline.has_gaussian_decoder
    with pytest.raises(ProtocolError) as caught:
        pipeline.run(TrellisRequest(images=(cutout(),), gaussians=True), Stages())
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    assert "--with gaussians" in caught.value.info.hint


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
    # Every view and the negative is a condition of its own, run at most two per forward.
    assert sum(counting.conditions) == forward_count(FAST, images=3, mode=mode)
    assert set(counting.conditions) <= {1, 2} and 2 in counting.conditions
    assert len(output.meshes[0].faces) > 0


def test_a_text_run_takes_the_shared_decoders_and_clip(tiny_text: TinyModel) -> None:
    pipeline = load(tiny_text)
    stages = Stages()
    output = pipeline.run(TrellisRequest(prompt="a small wooden chair", seed=3, structure=FAST,
                                         latent=FAST, gaussians=True), stages)  # fmt: skip
    assert stages.names() == STAGES and len(output.meshes[0].faces) > 0
    assert len(output.gaussians) == 1  # the Gaussian decoder from the shared component
    assert output.cond.shape == (1, 77, 32)
    assert torch.allclose(output.neg_cond, pipeline.conditioner.encode([""]))
    assert pipeline.default_settings()[0] == SamplerSettings(25, 5.0, (0.5, 1.0), 3.0)


def test_a_text_model_without_the_image_decoders_says_what_to_fetch(tiny_text: TinyModel) -> None:
    with pytest.raises(ProtocolError) as caught:
        TrellisPipeline.from_folder(tiny_text.folder,
                                    conditioner_folder=tiny_text.components["clip"])  # fmt: skip
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    assert "ss_dec_conv3d_16l8_fp16" in caught.value.info.message
