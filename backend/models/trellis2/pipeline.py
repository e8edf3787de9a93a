"""One TRELLIS.2 run: condition -> structure -> shape latent (-> cascade) -> texture latent ->
decoders -> dual-grid mesh + PBR voxels.

1. condition: the cut-out framed and encoded by DINOv3 at 512 px (and 1024 px for the cascade);
   the negative condition is zeros;
2. a CPU generator seeded with the request's seed draws every noise in upstream's order
   (structure, shape, [cascade shape], texture), so a seed gives the same asset on any device;
   structure flow (16^3 x 8), TRELLIS v1's structure decoder (logits > 0 on 64^3), max-pooled
   to the shape flow's grid (32^3 for 512);
3. shape latent (32 channels) on those voxels, de-normalised (``x * std + mean``);
   cascade: the shape decoder's voxels after 4 upsamplings, requantised to the high-resolution
   flow's grid (``(c + 0.5) / 512 * (res / 16)``), lowered by 128 while the tokens exceed
   ``max_num_tokens`` (never below 1024), and a second shape pass there with the 1024 condition;
4. texture latent: noise (32) concatenated with the normalised shape latent, de-normalised;
5. decoders: the shape decoder (subdivisions predicted) -> the flexible dual grid; the texture
   decoder following the same subdivisions -> 6 PBR channels, ``x / 2 + 1/2``;
6. the dual grid's mesh (dual_grid.py) and the PBR voxels (pbr_field.py), per batch element.

Knows nothing of adapters: progress goes to ``(stage, step, total)``, which may raise to cancel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from backend.models.sparse import SparseTensor
from backend.models.trellis.compiled import compile_blocks
from backend.models.trellis.condition import ConditionCache
from backend.models.trellis.loading import load_network as load_v1_network
from backend.models.trellis.loading import load_networks, resolve_stem
from backend.models.trellis.ss_decoder import occupied_coords
from backend.models.trellis2.config import (
    SHAPE_DECODER,
    SHAPE_ENCODER,
    SHAPE_ENCODER_STEM,
    SHAPE_FLOW_512,
    SHAPE_FLOW_1024,
    SS_DECODER,
    SS_FLOW,
    TEX_DECODER,
    TEX_FLOW_512,
    TEX_FLOW_1024,
    Trellis2PipelineConfig,
    read_pipeline_config,
)
from backend.models.trellis2.dinov3 import Dinov3Conditioner, load_dinov3
from backend.models.trellis2.dual_grid import DualGridMesh, dual_grid_to_mesh
from backend.models.trellis2.loading import load_network
from backend.models.trellis2.pbr_field import PbrVoxels
from backend.models.trellis2.sampler import (
    FlowEulerGuidanceIntervalSampler,
    Trellis2SamplerSettings,
)
from shared_protocol.errors import ErrorCode, ProtocolError

Progress = Callable[[str, int, int], None]
STAGES = ("condition", "structure", "shape", "texture", "decode", "mesh")
PIPELINE_TYPES = ("512", "1024_cascade", "1536_cascade")
NETWORKS_512 = (SS_FLOW, SS_DECODER, SHAPE_FLOW_512, TEX_FLOW_512, SHAPE_DECODER, TEX_DECODER)
NETWORKS_CASCADE = (SHAPE_FLOW_1024, TEX_FLOW_1024)
FLOW_ROLES = (SS_FLOW, SHAPE_FLOW_512, TEX_FLOW_512, *NETWORKS_CASCADE)


@dataclass(frozen=True)
class Trellis2Request:
    images: tuple[np.ndarray, ...]
    seed: int = 0
    pipeline_type: str = "512"
    structure: Trellis2SamplerSettings | None = None  # None: pipeline.json's
    shape: Trellis2SamplerSettings | None = None
    texture: Trellis2SamplerSettings | None = None
    max_num_tokens: int = 49152


@dataclass
class Trellis2Output:
    cond: Tensor
    coords: Tensor  # (N, 4) int32 structure voxels (shape flow grid)
    shape_latent: SparseTensor
    texture_latent: SparseTensor
    resolution: int  # the mesh grid's side
    mesh: DualGridMesh
    pbr: PbrVoxels
    warnings: list[str] = field(default_factory=list)


class Trellis2Pipeline:
    def __init__(
        self,
        config: Trellis2PipelineConfig,
        conditioner: Dinov3Conditioner,
        networks: dict[str, nn.Module],
        device: str | torch.device,
    ) -> None:
        self.config, self.conditioner, self.networks = config, conditioner, networks
        self.device = torch.device(device)
        self.samplers = {
            role: FlowEulerGuidanceIntervalSampler(s.sigma_min)
            for role, s in config.samplers.items()
        }

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        *,
        dinov3_folder: Path | None,
        shared_folders: Sequence[Path] = (),
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        encoder_folder: Path | None = None,
    ) -> Trellis2Pipeline:
        """Load pipeline.json's networks strictly (the 1024 flows when their files are there),
        and the shape encoder (texturing a mesh) from ``encoder_folder`` when given."""
        config = read_pipeline_config(folder)
        networks = load_networks(
            config.models, folder, shared_folders, NETWORKS_512, NETWORKS_CASCADE, device, dtype,
            loader_of=lambda role: load_v1_network if role == SS_DECODER else load_network,
        )  # fmt: skip
        if encoder_folder is not None:
            stem = resolve_stem(SHAPE_ENCODER_STEM, encoder_folder, ())
            networks[SHAPE_ENCODER], _ = load_network(stem, device, dtype)
        return cls(config, load_dinov3(dinov3_folder, device), networks, device)

    def compile_blocks(self) -> None:
        """torch.compile the flows' blocks (``backend.models.trellis.compiled``)."""
        compile_blocks(self.networks[role] for role in FLOW_ROLES if role in self.networks)

    @property
    def has_cascade(self) -> bool:
        return all(role in self.networks for role in NETWORKS_CASCADE)

    def settings(
        self, role: str, override: Trellis2SamplerSettings | None
    ) -> Trellis2SamplerSettings:
        return override or self.config.samplers[role].settings

    @torch.no_grad()
    def run(self, request: Trellis2Request, progress: Progress) -> Trellis2Output:
        cascade = request.pipeline_type != "512"
        if cascade and not self.has_cascade:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"pipeline {request.pipeline_type} needs the 1024 flows, which are not loaded",
                hint="Download them (`dreamcad-backend download trellis2-4b --with cascade`).",
            )
        # 1. condition
        progress("condition", 0, 1)
        cond = self.conditioner.encode(list(request.images), 512)
        cond_hr = self.conditioner.encode(list(request.images), 1024) if cascade else None
        progress("condition", 1, 1)
        generator = torch.Generator("cpu").manual_seed(request.seed)

        # 2. structure
        coords = self._structure(cond, request, generator, progress)

        # 3. shape latent (and the cascade)
        shape_flow = self.networks[SHAPE_FLOW_512]
        shape = self._flow("shape", shape_flow, coords, cond, request.shape, generator, progress)
        shape = self._denormalise(shape, self.config.shape_mean, self.config.shape_std)
        low = shape_flow.resolution * 2 ** self.networks[SHAPE_DECODER].upsamplings
        resolution = low
        warnings: list[str] = []
        if cascade:
            target = low * (2 if request.pipeline_type == "1024_cascade" else 3)
            coords, resolution = self._cascade_coords(shape, low, target, request.max_num_tokens)
            if resolution != target:
                warnings.append(
                    f"{request.pipeline_type}: lowered to {resolution} to stay within "
                    f"{request.max_num_tokens} tokens"
                )
            hr_flow = self.networks[SHAPE_FLOW_1024]
            shape = self._flow(
                "shape", hr_flow, coords, cond_hr, request.shape, generator, progress
            )
            shape = self._denormalise(shape, self.config.shape_mean, self.config.shape_std)

        # 4. texture latent, conditioned on the normalised shape latent
        tex_flow = self.networks[TEX_FLOW_1024 if cascade else TEX_FLOW_512]
        normalised = self._normalise(shape, self.config.shape_mean, self.config.shape_std)
        texture = self._flow(
            "texture", tex_flow, coords, cond_hr if cascade else cond, request.texture,
            generator, progress, concat=normalised,
        )  # fmt: skip
        texture = self._denormalise(texture, self.config.tex_mean, self.config.tex_std)

        # 5. decoders: the texture decoder follows the shape decoder's subdivisions
        progress("decode", 0, 2)
        shape_decoder = self.networks[SHAPE_DECODER]
        decoded, subs = shape_decoder.run(shape)
        grid = shape_decoder.dual_grid(decoded, resolution)
        progress("decode", 1, 2)
        pbr_feats = self.networks[TEX_DECODER].run(texture, guide_subs=subs)[0]
        progress("decode", 2, 2)

        # 6. mesh and PBR voxels (one batch element)
        progress("mesh", 0, 1)
        mesh = dual_grid_to_mesh(
            grid.coords[:, 1:], grid.vertices, grid.intersected, grid.split_weight, resolution
        )
        attributes = (pbr_feats.feats.float() * 0.5 + 0.5).cpu().numpy()
        pbr = PbrVoxels.from_voxels(pbr_feats.coords[:, 1:].cpu().numpy(), attributes, resolution)
        progress("mesh", 1, 1)
        return Trellis2Output(cond, coords, shape, texture, resolution, mesh, pbr, warnings)

    def _structure(
        self, cond: Tensor, request: Trellis2Request, generator: torch.Generator, progress: Progress
    ) -> Tensor:
        flow = self.networks[SS_FLOW]
        settings = self.settings("sparse_structure_sampler", request.structure)
        side = flow.resolution
        noise = torch.randn(1, flow.in_channels, side, side, side, generator=generator)
        conditions = ConditionCache(flow)  # K/V once per run; the zeros negative's constant

        def velocity(x: Tensor, t: Tensor, c: Tensor) -> Tensor:
            return flow(x, t, conditions(c))

        latent = self.samplers["sparse_structure_sampler"].sample(
            velocity, noise.to(self.device), cond, self.conditioner.negative(cond), settings,
            on_step=lambda i, n: progress("structure", i, n + 1),
        )  # fmt: skip
        logits = self.networks[SS_DECODER](latent)
        target = self.networks[SHAPE_FLOW_512].resolution
        if logits.shape[2] != target:
            ratio = logits.shape[2] // target
            occupied = (logits > 0).float()
            logits = torch.nn.functional.max_pool3d(occupied, ratio, ratio, 0) - 0.5
        coords = occupied_coords(logits)
        progress("structure", settings.steps + 1, settings.steps + 1)
        if len(coords) == 0:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED, "TRELLIS.2 found no occupied voxels for this input",
                hint="Try another seed, or a higher structure guidance.",
            )  # fmt: skip
        return coords

    def _flow(
        self,
        stage: str,
        flow: nn.Module,
        coords: Tensor,
        cond: Tensor,
        override: Trellis2SamplerSettings | None,
        generator: torch.Generator,
        progress: Progress,
        concat: SparseTensor | None = None,
    ) -> SparseTensor:
        role = "shape_slat_sampler" if stage == "shape" else "tex_slat_sampler"
        channels = flow.in_channels - (concat.feats.shape[1] if concat is not None else 0)
        noise = torch.randn(len(coords), channels, generator=generator).to(self.device)
        template = SparseTensor(noise, coords)
        conditions = ConditionCache(flow)  # K/V once per run; the zeros negative's constant

        def velocity(feats: Tensor, t: Tensor, c: Tensor) -> Tensor:
            return flow(template.replace(feats), t, conditions(c), concat).feats

        feats = self.samplers[role].sample(
            velocity, noise, cond, self.conditioner.negative(cond), self.settings(role, override),
            sparse=True, on_step=lambda i, n: progress(stage, i, n),
        )  # fmt: skip
        return template.replace(feats)

    def _cascade_coords(
        self, shape: SparseTensor, low: int, target: int, max_tokens: int
    ) -> tuple[Tensor, int]:
        """The high-resolution flow's voxels: the decoder's upsampled voxels (at ``low``)
        requantised to ``resolution / 2^ups``, lowered in steps of low / 4 (128 for the
        release) while over ``max_tokens``, never below 2 low (1024)."""
        decoder = self.networks[SHAPE_DECODER]
        high = decoder.upsample(shape, upsample_times=decoder.upsamplings)
        scale, resolution = 2**decoder.upsamplings, target
        while True:
            scaled = ((high[:, 1:].float() + 0.5) / low * (resolution // scale)).int()
            coords = torch.cat([high[:, :1], scaled], dim=1).unique(dim=0)
            if len(coords) < max_tokens or resolution <= 2 * low:
                return coords.int(), resolution
            resolution -= low // 4

    @staticmethod
    def _denormalise(x: SparseTensor, mean: Sequence[float], std: Sequence[float]) -> SparseTensor:
        m = torch.tensor(mean, device=x.device)[None]
        s = torch.tensor(std, device=x.device)[None]
        return x.replace(x.feats * s + m)

    @staticmethod
    def _normalise(x: SparseTensor, mean: Sequence[float], std: Sequence[float]) -> SparseTensor:
        m = torch.tensor(mean, device=x.device)[None]
        s = torch.tensor(std, device=x.device)[None]
        return x.replace((x.feats - m) / s)
