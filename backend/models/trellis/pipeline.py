"""One TRELLIS run, step by step: condition -> structure -> occupied voxels -> latent -> mesh.

1. condition: images (cut-outs) through DINOv2, or the prompt through CLIP, and the negative
   condition (zeros for images, CLIP's encoding of "" for text);
2. seed a CPU generator and draw the structure noise (1, 8, 16^3) on the CPU, then move it
   (upstream seeds after conditioning and draws both noises from the CPU RNG, so the noise is the
   same on every device); sample the sparse-structure flow;
3. decode the structure latent; the occupied voxels are the logits > 0;
4. draw the latent noise (N, 8) from the same generator, sample the structured-latent flow on
   the voxels, de-normalise with pipeline.json's mean and std;
5. decode the structured latent with the mesh decoder (101 channels per 256^3 voxel);
6. FlexiCubes -> vertices, faces and per-vertex colour.

Steps 4-6 use the structured-latent networks (``slat_flow.py``, ``slat_decoders.py``, the sparse
layer ``backend.models.sparse``) and the mesh extraction (``mesh_extraction.py``); a build
without them stops after step 4's noise and says so in :attr:`TrellisOutput.stopped_after`.
The pipeline knows nothing of adapters: progress goes to a ``(stage, step, total)`` callback,
which may raise to cancel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.models.trellis.conditioners import (
    ImageConditioner,
    TextConditioner,
    load_image_conditioner,
    load_text_conditioner,
)
from backend.models.trellis.config import (
    MESH_DECODER,
    SLAT_FLOW,
    SS_DECODER,
    SS_FLOW,
    PipelineConfig,
    read_pipeline_config,
)
from backend.models.trellis.loading import (
    load_network,
    module_exists,
    network_available,
    resolve_stem,
)
from backend.models.trellis.sampler import FlowEulerGuidanceIntervalSampler, SamplerSettings
from backend.models.trellis.ss_decoder import occupied_coords
from shared_protocol.errors import ErrorCode, ProtocolError

Progress = Callable[[str, int, int], None]  # (stage, step, total); may raise to cancel
MESH_EXTRACTION_MODULE = "backend.models.trellis.mesh_extraction"
SPARSE_TENSOR_MODULE = "backend.models.sparse.tensor"
STAGES = ("condition", "structure", "latent", "decode", "mesh")


@dataclass(frozen=True)
class TrellisRequest:
    """What one run makes: from cut-out images (h, w, 4) uint8, or from a prompt."""

    images: tuple[np.ndarray, ...] = ()
    prompt: str = ""
    seed: int = 0
    structure: SamplerSettings = field(default_factory=lambda: SamplerSettings(25, 5.0))
    latent: SamplerSettings = field(default_factory=lambda: SamplerSettings(25, 5.0))
    multi_image: str = "stochastic"


@dataclass
class TrellisOutput:
    """Every intermediate a caller (or a parity test) may want, on the pipeline's device."""

    cond: torch.Tensor  # (n, L, C)
    neg_cond: torch.Tensor  # (1, L, C)
    structure_latent: torch.Tensor  # (1, 8, R, R, R)
    coords: torch.Tensor  # (N, 4) int32: batch, x, y, z of the occupied voxels
    latent_noise: torch.Tensor  # (N, 8)
    latent: torch.Tensor | None = None  # (N, 8) de-normalised structured latent
    mesh_features: Any = None  # SparseTensor (M, 101) at 4x the latent resolution
    mesh: Any = None  # the mesh extraction's result: vertices, faces, vertex_attrs
    stopped_after: str = "mesh"  # the last step run ("structure": no SLat stage in this build)


def structured_latent_available() -> bool:
    """Whether this build has the SLat flow, the decoders, the sparse layer and FlexiCubes."""
    networks = ("SLatFlowModel", "SLatMeshDecoder")
    modules = (SPARSE_TENSOR_MODULE, MESH_EXTRACTION_MODULE)
    return all(map(network_available, networks)) and all(map(module_exists, modules))


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
        """Load ``pipeline.json``'s networks (the SLat ones when this build has them), strictly.

        ``dtype`` is the torso dtype (None: as stored, float16); the conditioner runs float32."""
        config = read_pipeline_config(folder)
        roles = [SS_FLOW, SS_DECODER]
        if structured_latent_available():
            roles += [SLAT_FLOW, MESH_DECODER]
        networks = {}
        for role in roles:
            if role not in config.models:
                raise ProtocolError(ErrorCode.MODEL_FAILED, f"pipeline.json lacks {role}")
            stem = resolve_stem(config.models[role], folder, shared_folders)
            networks[role], _ = load_network(stem, device, dtype)
        loader = load_text_conditioner if config.is_text else load_image_conditioner
        return cls(config, loader(conditioner_folder, device), networks, device)

    def default_settings(self) -> tuple[SamplerSettings, SamplerSettings]:
        """pipeline.json's sampler parameters for the structure and latent stages."""
        return tuple(  # type: ignore[return-value]
            SamplerSettings(s.steps, s.cfg_strength, s.cfg_interval, s.rescale_t)
            for s in (self.config.sparse_structure_sampler, self.config.slat_sampler)
        )

    @torch.no_grad()
    def run(self, request: TrellisRequest, progress: Progress) -> TrellisOutput:
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
            flow,
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
        latent_channels = getattr(self.networks.get(SLAT_FLOW), "in_channels", 8)
        latent_noise = torch.randn(len(coords), latent_channels, generator=generator)
        output = TrellisOutput(
            cond=cond,
            neg_cond=neg_cond,
            structure_latent=structure,
            coords=coords,
            latent_noise=latent_noise.to(self.device),
            stopped_after="structure",
        )
        if SLAT_FLOW not in self.networks:
            return output

        # 4. structured latent
        output.latent = self._sample_latent(output, request, progress)
        output.stopped_after = "latent"

        # 5. mesh decoder features
        progress("decode", 0, 1)
        output.mesh_features = self.networks[MESH_DECODER](self._sparse(output.latent, coords))
        output.stopped_after = "decode"
        progress("decode", 1, 1)

        # 6. mesh extraction
        progress("mesh", 0, 1)
        output.mesh = self._extract_mesh(output.mesh_features)
        output.stopped_after = "mesh"
        progress("mesh", 1, 1)
        return output

    def _sparse(self, feats: torch.Tensor, coords: torch.Tensor) -> Any:
        from backend.models.sparse.tensor import SparseTensor

        return SparseTensor(feats=feats, coords=coords)

    def _sample_latent(
        self, output: TrellisOutput, request: TrellisRequest, progress: Progress
    ) -> torch.Tensor:
        flow = self.networks[SLAT_FLOW]
        template = self._sparse(output.latent_noise, output.coords)

        def velocity(feats: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            # replace() keeps the coordinates and their cached neighbour maps between steps.
            return flow(template.replace(feats), t, cond).feats

        feats = self.latent_sampler.sample(
            velocity,
            output.latent_noise,
            output.cond,
            output.neg_cond,
            request.latent,
            request.multi_image,
            on_step=lambda i, n: progress("latent", i, n),
        )
        std = torch.tensor(self.config.slat_std, device=feats.device)[None]
        mean = torch.tensor(self.config.slat_mean, device=feats.device)[None]
        return feats * std + mean

    def _extract_mesh(self, features: Any) -> Any:
        from backend.models.trellis.mesh_extraction import SparseFeatures2Mesh

        decoder = self.networks[MESH_DECODER]
        use_color = bool(decoder.config.representation_config.get("use_color", False))
        extractor = SparseFeatures2Mesh(res=decoder.config.resolution * 4, use_color=use_color)
        return extractor(features)
