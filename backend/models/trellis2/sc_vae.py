"""TRELLIS.2's sparse-compression VAE decoders: shape (flexible dual grid) and texture (PBR).

Upstream: ``trellis2/models/sc_vaes/sparse_unet_vae.py`` (``SparseUnetVaeDecoder``) and
``fdg_vae.py`` (``FlexiDualGridVaeDecoder``). A decoder is ``from_latent`` (latent -> C0), then
per stage ``i`` its ConvNeXt blocks and, between stages, a Channel2Spatial residual block
(x2 resolution each: 16x over the four of the release), a parameter-free LayerNorm and
``output_layer``. Keys: ``from_latent``, ``blocks.{i}.{j}.*`` (the up block is the last ``j`` of
stage i), ``output_layer``. ``use_fp16``: the blocks' linear and conv layers are stored and run
in fp16, everything else fp32.

The shape decoder predicts which children each voxel has (``to_subdiv``); the texture decoder
(``pred_subdiv`` false) is given the shape decoder's subdivisions, so both land on the same
voxels. The shape decoder's 7 output channels become the flexible dual grid: dual vertex
offsets ``(1 + 2 m) sigmoid - m`` (m = ``voxel_margin``), three edge-intersection flags
(logit > 0) and the quad split weight ``softplus``; the texture decoder's 6 channels are PBR
attributes in [-1, 1] (the pipeline maps them with ``x / 2 + 1/2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import SparseLinear, SparseTensor
from backend.models.sparse.convnext import SparseConvNeXtBlock3d, SparseResBlockC2S3d
from backend.models.trellis.transformer import convert_torso

BLOCK_TYPES = {"SparseConvNeXtBlock3d"}
UP_BLOCK_TYPES = {"SparseResBlockC2S3d"}


class SparseUnetVaeDecoder(nn.Module):
    def __init__(
        self,
        out_channels: int,
        model_channels: Sequence[int],
        latent_channels: int,
        num_blocks: Sequence[int],
        block_type: Sequence[str],
        up_block_type: Sequence[str],
        block_args: Sequence[dict[str, Any]] = (),
        use_fp16: bool = False,
        pred_subdiv: bool = True,
    ) -> None:
        super().__init__()
        stages = len(num_blocks)
        if not (len(model_channels) == len(block_type) == stages == len(up_block_type) + 1):
            raise ValueError("model_channels, num_blocks and block types disagree in length")
        unknown = (set(block_type) - BLOCK_TYPES) | (set(up_block_type) - UP_BLOCK_TYPES)
        if unknown:
            raise ValueError(f"unsupported block types {sorted(unknown)}")
        # block_args only carry use_checkpoint (a training memory option): nothing to build.
        self.out_channels, self.pred_subdiv = out_channels, pred_subdiv
        self.from_latent = SparseLinear(latent_channels, model_channels[0])
        self.blocks = nn.ModuleList()
        for i in range(stages):
            stage = nn.ModuleList(
                SparseConvNeXtBlock3d(model_channels[i]) for _ in range(num_blocks[i])
            )
            if i < stages - 1:
                stage.append(
                    SparseResBlockC2S3d(model_channels[i], model_channels[i + 1], pred_subdiv)
                )
            self.blocks.append(stage)
        self.output_layer = SparseLinear(model_channels[-1], out_channels)
        if use_fp16:
            self.convert_torso(torch.float16)

    def convert_torso(self, dtype: torch.dtype) -> None:
        convert_torso(self.blocks, dtype)

    @property
    def upsamplings(self) -> int:
        """How many 2x upsamplings the decoder makes (4 in the release: 16x)."""
        return len(self.blocks) - 1

    @property
    def dtype(self) -> torch.dtype:
        """The torso's compute dtype: that of its linear layers (norms stay float32)."""
        linears = (m for m in self.blocks.modules() if isinstance(m, nn.Linear))
        return next((m.weight.dtype for m in linears), torch.float32)

    def run(
        self, x: SparseTensor, guide_subs: Sequence[Tensor] | None = None, stop: int | None = None
    ) -> tuple[SparseTensor, list[Tensor]]:
        """Stages up to ``stop`` (None: all, then the output layer) -> (features, the (P, 8)
        bool subdivision masks used at each upsampling)."""
        if guide_subs is None and not self.pred_subdiv:
            raise ValueError("a decoder without to_subdiv needs the subdivisions to follow")
        h = self.from_latent(x)
        h = h.replace(h.feats.type(self.dtype))
        subs: list[Tensor] = []
        for i, stage in enumerate(self.blocks):
            if i == stop:
                return h, subs
            for block in stage:
                if isinstance(block, SparseResBlockC2S3d):
                    guide = None if guide_subs is None else guide_subs[len(subs)]
                    h, sub = block(h, guide)
                    subs.append(sub)
                else:
                    h = block(h)
        feats = F.layer_norm(h.feats.type(x.feats.dtype), h.feats.shape[-1:])
        return self.output_layer(h.replace(feats)), subs

    def forward(self, x: SparseTensor, guide_subs: Sequence[Tensor] | None = None) -> SparseTensor:
        return self.run(x, guide_subs)[0]

    def upsample(self, x: SparseTensor, upsample_times: int) -> Tensor:
        """The (M, 4) coordinates after ``upsample_times`` upsamplings (the cascade's input)."""
        return self.run(x, stop=upsample_times)[0].coords


@dataclass
class DualGrid:
    """The shape decoder's output on its voxels: coords (N, 4) int32 [b, x, y, z], dual vertex
    offsets (N, 3) in voxel units, intersection flags (N, 3) bool for the edges along x, y, z,
    quad split weights (N, 1), and the grid's resolution."""

    coords: Tensor
    vertices: Tensor
    intersected: Tensor
    split_weight: Tensor
    resolution: int


class FlexiDualGridVaeDecoder(SparseUnetVaeDecoder):
    def __init__(
        self,
        resolution: int,
        model_channels: Sequence[int],
        latent_channels: int,
        num_blocks: Sequence[int],
        block_type: Sequence[str],
        up_block_type: Sequence[str],
        block_args: Sequence[dict[str, Any]] = (),
        voxel_margin: float = 0.5,
        use_fp16: bool = False,
    ) -> None:
        super().__init__(
            7, model_channels, latent_channels, num_blocks, block_type, up_block_type,
            block_args, use_fp16,
        )  # fmt: skip
        self.resolution, self.voxel_margin = resolution, voxel_margin

    def dual_grid(self, h: SparseTensor, resolution: int | None = None) -> DualGrid:
        """The decoded features (N, 7) -> the flexible dual grid."""
        feats = h.feats.float()
        margin = self.voxel_margin
        return DualGrid(
            coords=h.coords,
            vertices=(1 + 2 * margin) * torch.sigmoid(feats[:, 0:3]) - margin,
            intersected=feats[:, 3:6] > 0,
            split_weight=F.softplus(feats[:, 6:7]),
            resolution=resolution or self.resolution,
        )
