"""One TRELLIS run, step by step: condition -> structure -> voxels -> latent -> decoders -> mesh.

1. condition: images (cut-outs) through DINOv2, or the prompt through CLIP, and the negative
   condition (zeros for images, CLIP's encoding of "" for text);
2. seed a CPU generator and draw the structure noise (1, 8, 16^3) on the CPU, then move it
   (upstream seeds after conditioning and draws both noises from the CPU RNG, so the noise is the
   same on every device); sample the sparse-structure flow;
3. decode the structure latent; the occupied voxels are the logits > 0;
4. draw the latent noise (N, 8) from the same generator, sample the structured-latent flow on
   the voxels, de-normalise with pipeline.json's ``slat_normalization`` (``x * std + mean``);
5. decode the structured latent with the mesh decoder (101 channels per voxel at 4x the
   resolution) and, when asked, with the Gaussian decoder (its raw Gaussian parameters);
6. per batch element: FlexiCubes (``mesh_extraction.features_to_mesh``) -> vertices, faces and
   per-vertex colour, and the decoded colour on the grid vertices (``colour_field``) for the bake.

The pipeline knows nothing of adapters: progress goes to a ``(stage, step, total)`` callback,
called at every sampler step and after every decoder block, which may raise to cancel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backend.models.sparse import SparseTensor
from backend.models.trellis.colour_field import GridColours, grid_colours
from backend.models.trellis.compiled import compile_blocks
from backend.models.trellis.conditioners import (
    ImageConditioner,
    TextConditioner,
    load_image_conditioner,
    load_text_conditioner,
)
from backend.models.trellis.config import (
    GAUSSIAN_DECODER,
    MESH_DECODER,
    RF_DECODER,
    SLAT_FLOW,
    SS_DECODER,
    SS_FLOW,
    PipelineConfig,
    read_pipeline_config,
)
from backend.models.trellis.loading import load_networks
from backend.models.trellis.mesh_extraction import TrellisMesh, features_to_mesh
from backend.models.trellis.sampler import FlowEulerGuidanceIntervalSampler, SamplerSettings
from backend.models.trellis.slat_decoders import GaussianParameters, RadianceFieldParameters
from backend.models.trellis.ss_decoder import occupied_coords
from backend.models.trellis.velocity import DenseFlowVelocity, SparseFlowVelocity
from shared_protocol.errors import ErrorCode, ProtocolError

Progress = Callable[[str, int, int], None]  # (stage, step, total); may raise to cancel
STAGES = ("condition", "structure", "latent", "decode", "mesh")
REQUIRED_NETWORKS = (SS_FLOW, SS_DECODER, SLAT_FLOW, MESH_DECODER)
OPTIONAL_NETWORKS = (GAUSSIAN_DECODER, RF_DECODER)  # loaded when their files are there


@dataclass(frozen=True)
class TrellisRequest:
    """What one run makes: from cut-out images (h, w, 4) uint8, or from a prompt."""

    images: tuple[np.ndarray, ...] = ()
    prompt: str = ""
    seed: int = 0
    structure: SamplerSettings = field(default_factory=lambda: SamplerSettings(25, 5.0))
    latent: SamplerSettings = field(default_factory=lambda: SamplerSettings(25, 5.0))
    multi_image: str = "stochastic"
    gaussians: bool = False  # also decode the structured latent to 3D Gaussians
    radiance_field: bool = False  # also decode it to a radiance field (a colour source)


@dataclass
class TrellisOutput:
    """Every intermediate a caller (or a parity test) may want, on the pipeline's device.

    The lists hold one entry per batch element (one today: a run makes one asset)."""

    cond: torch.Tensor  # (n, L, C)
    neg_cond: torch.Tensor  # (1, L, C)
    structure_latent: torch.Tensor  # (1, 8, R, R, R)
    coords: torch.Tensor  # (N, 4) int32: batch, x, y, z of the occupied voxels
    latent_noise: torch.Tensor  # (N, 8)
    latent: torch.Tensor  # (N, 8) de-normalised structured latent
    mesh_features: SparseTensor  # (64 N, 101) at 4x the latent resolution
    meshes: list[TrellisMesh]  # TRELLIS frame (+Z up), colours (V, 6) RGB | normal map
    colours: list[GridColours]  # the decoded RGB on the grid vertices (the bake's field)
    mesh_resolution: int  # the mesh grid's side (256 for the release)
    gaussians: list[GaussianParameters] = field(default_factory=list)  # raw, when asked
    radiance_fields: list[RadianceFieldParameters] = field(default_factory=list)  # when asked


class TrellisPipeline:
    def __init__(
        self,
        config: PipelineConfig,
        conditioner: ImageConditioner | TextConditioner,
        networks: dict[str, nn.Module],
        device: str | torch.device,
    ) -> None:
        self.config, self.conditioner, self.device = config, conditioner, torch.device(device)
        self.networks = networks
        self.structure_sampler = FlowEulerGuidanceIntervalSampler(
            config.sparse_structure_sampler.sigma_min
        )
        self.latent_sampler = FlowEulerGuidanceIntervalSampler(config.slat_sampler.sigma_min)

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        conditioner_folder: Path,
        shared_folders: Sequence[Path] = (),
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> TrellisPipeline:
        """Load ``pipeline.json``'s networks strictly; the Gaussian and radiance-field decoders
        when their files are in the folder or a shared one (optional: only the ``gaussians``
        and ``colour_source=radiance_field`` options need them).

        ``dtype`` is the torso dtype (None: as stored, float16); the conditioner runs float32."""
        config = read_pipeline_config(folder)
        networks = load_networks(
            config.models, folder, shared_folders, REQUIRED_NETWORKS, OPTIONAL_NETWORKS,
            device, dtype,
        )  # fmt: skip
        loader = load_text_conditioner if config.is_text else load_image_conditioner
        return cls(config, loader(conditioner_folder, device), networks, device)

    def compile_blocks(self) -> None:
        """torch.compile both flows' blocks (``backend.models.trellis.compiled``)."""
        compile_blocks(self.networks[role] for role in (SS_FLOW, SLAT_FLOW))

    @property
    def has_gaussian_decoder(self) -> bool:
        return GAUSSIAN_DECODER in self.networks

    def default_settings(self) -> tuple[SamplerSettings, SamplerSettings]:
        """pipeline.json's sampler parameters for the structure and latent stages."""
        return tuple(  # type: ignore[return-value]
            SamplerSettings(s.steps, s.cfg_strength, s.cfg_interval, s.rescale_t)
            for s in (self.config.sparse_structure_sampler, self.config.slat_sampler)
        )

    @torch.no_grad()
    def run(self, request: TrellisRequest, progress: Progress) -> TrellisOutput:
        if request.gaussians and not self.has_gaussian_decoder:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                "the Gaussian decoder (ckpts/slat_dec_gs_*) is not loaded",
                hint="Download it (`dreamcad-backend download MODEL --with gaussians`).",
            )
        if request.radiance_field and RF_DECODER not in self.networks:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                "the radiance-field decoder (ckpts/slat_dec_rf_*) is not loaded",
                hint="Download it (`dreamcad-backend download MODEL --with radiance_field`).",
            )
        # 1. condition
        progress("condition", 0, 1)
        if self.config.is_text:
            cond = self.conditioner.encode([request.prompt])
        else:
            cond = self.conditioner.encode(list(request.images))
        neg_cond = self.conditioner.negative(cond)
        progress("condition", 1, 1)

        # 2. structure noise (CPU RNG, after conditioning) and the sparse-structure flow
        generator = torch.Generator("cpu").manual_seed(request.seed)
        flow = self.networks[SS_FLOW]
        side = flow.resolution
        noise = torch.randn(1, flow.in_channels, side, side, side, generator=generator)
        structure = self.structure_sampler.sample(
            DenseFlowVelocity(flow),
            noise.to(self.device),
            cond,
            neg_cond,
            request.structure,
            request.multi_image,
            on_step=lambda i, n: progress("structure", i, n + 1),
        )

        # 3. occupied voxels
        coords = occupied_coords(self.networks[SS_DECODER](structure))
        progress("structure", request.structure.steps + 1, request.structure.steps + 1)
        if len(coords) == 0:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                "TRELLIS found no occupied voxels for this input",
                hint="Try another seed, or a higher structure guidance.",
            )

        # 4. structured latent: noise from the same CPU generator, then the flow
        slat_flow = self.networks[SLAT_FLOW]
        channels = slat_flow.input_layer.in_features
        latent_noise = torch.randn(len(coords), channels, generator=generator)
        latent_noise = latent_noise.to(self.device)
        latent = self._sample_latent(coords, latent_noise, cond, neg_cond, request, progress)

        # 5. decoders (progress after each block)
        slat = SparseTensor(latent, coords)
        mesh_decoder = self.networks[MESH_DECODER]
        decoders = [mesh_decoder]
        if request.gaussians:
            decoders.append(self.networks[GAUSSIAN_DECODER])
        if request.radiance_field:
            decoders.append(self.networks[RF_DECODER])
        with decoder_progress(decoders, progress) as finished:
            mesh_features = mesh_decoder(slat)
            finished()
            gaussians, radiance_fields = [], []
            if request.gaussians:
                gaussian_decoder = self.networks[GAUSSIAN_DECODER]
                gaussians = gaussian_decoder.gaussian_parameters(gaussian_decoder(slat))
                finished()
            if request.radiance_field:
                rf_decoder = self.networks[RF_DECODER]
                radiance_fields = rf_decoder.radiance_field_parameters(rf_decoder(slat))
                finished()

        # 6. mesh extraction and the colour grid, per batch element
        resolution = mesh_decoder.out_resolution
        layout = mesh_features.layout
        meshes, colours = [], []
        progress("mesh", 0, len(layout))
        for index, rows in enumerate(layout):
            element_coords, element_feats = mesh_features.coords[rows], mesh_features.feats[rows]
            meshes.append(features_to_mesh(element_coords, element_feats, resolution))
            colours.append(grid_colours(element_coords, element_feats, resolution))
            progress("mesh", index + 1, len(layout))
        return TrellisOutput(
            cond=cond,
            neg_cond=neg_cond,
            structure_latent=structure,
            coords=coords,
            latent_noise=latent_noise,
            latent=latent,
            mesh_features=mesh_features,
            meshes=meshes,
            colours=colours,
            mesh_resolution=resolution,
            gaussians=gaussians,
            radiance_fields=radiance_fields,
        )

    def _sample_latent(
        self,
        coords: torch.Tensor,
        noise: torch.Tensor,
        cond: torch.Tensor,
        neg_cond: torch.Tensor,
        request: TrellisRequest,
        progress: Progress,
    ) -> torch.Tensor:
        # One velocity for the whole sampling: the voxels' neighbour maps, downsampled sets and
        # position embedding (also those of the guided batch of copies) are built once.
        velocity = SparseFlowVelocity(self.networks[SLAT_FLOW], coords)
        feats = self.latent_sampler.sample(
            velocity,
            noise,
            cond,
            neg_cond,
            request.latent,
            request.multi_image,
            on_step=lambda i, n: progress("latent", i, n),
        )
        std = torch.tensor(self.config.slat_std, device=feats.device)[None]
        mean = torch.tensor(self.config.slat_mean, device=feats.device)[None]
        return feats * std + mean


def decoder_blocks(decoder: nn.Module) -> list[nn.Module]:
    """The blocks a decoder runs one after another (trunk, then upsampling if any)."""
    return [*decoder.blocks, *getattr(decoder, "upsample", ())]


@contextlib.contextmanager
def decoder_progress(decoders: Sequence[nn.Module], progress: Progress) -> Iterator[Callable]:
    """Report ``decode`` after every block of ``decoders`` (run in order) through forward hooks,
    so a cancel (progress raising) stops a long decode between blocks; yields ``finished()``,
    which the caller calls after each decoder's last layer."""
    total = sum(len(decoder_blocks(d)) + 1 for d in decoders)
    done = [0]

    def step(*_: object) -> None:
        done[0] += 1
        progress("decode", done[0], total)

    progress("decode", 0, total)
    handles = [block.register_forward_hook(step) for d in decoders for block in decoder_blocks(d)]
    try:
        yield step
    finally:
        for handle in handles:
            handle.remove()
