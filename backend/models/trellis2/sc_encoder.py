"""TRELLIS.2's shape SC-VAE *encoder*: a flexible dual grid -> the 32-channel shape latent.

Upstream: ``trellis2/models/sc_vaes/sparse_unet_vae.py`` (``SparseUnetVaeEncoder``) and
``fdg_vae.py`` (``FlexiDualGridVaeEncoder``); the release's checkpoint is
``ckpts/shape_enc_next_dc_f16c32_fp16`` (what upstream's texturing pipeline loads as
``shape_slat_encoder``). The input is 6 channels per voxel: the dual vertex inside its voxel
(0..1 per axis) and the three edge-intersection flags, each minus 0.5. Then ``input_layer``,
per stage ``i`` its ConvNeXt blocks and, between stages, a Spatial2Channel residual block (/2
each: 16x over the release's four), a parameter-free LayerNorm and ``to_latent`` (2 x latent:
mean | log-variance; inference takes the mean). Keys: ``input_layer``, ``blocks.{i}.{j}.*``,
``to_latent``; ``use_fp16`` stores and runs the blocks' linear and conv layers in fp16.

Besides the latent, ``encode`` returns the coordinate sets the downsamplings went through
(finest first): the texture decoder climbs back up them (``subdivisions``), so its PBR voxels
land exactly on the artist's mesh voxels, as upstream's cached Spatial2Channel pairing does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import SparseLinear, SparseTensor
from backend.models.sparse.convnext import SparseConvNeXtBlock3d, SparseResBlockS2C3d
from backend.models.trellis.transformer import convert_torso

BLOCK_TYPES = {"SparseConvNeXtBlock3d"}
DOWN_BLOCK_TYPES = {"SparseResBlockS2C3d"}
IN_CHANNELS = 6


class SparseUnetVaeEncoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        model_channels: Sequence[int],
        latent_channels: int,
        num_blocks: Sequence[int],
        block_type: Sequence[str],
        down_block_type: Sequence[str],
        block_args: Sequence[dict[str, Any]] = (),
        use_fp16: bool = False,
    ) -> None:
        super().__init__()
        stages = len(num_blocks)
        if not (len(model_channels) == len(block_type) == stages == len(down_block_type) + 1):
            raise ValueError("model_channels, num_blocks and block types disagree in length")
        unknown = (set(block_type) - BLOCK_TYPES) | (set(down_block_type) - DOWN_BLOCK_TYPES)
        if unknown:
            raise ValueError(f"unsupported block types {sorted(unknown)}")
        # block_args only carry use_checkpoint (a training memory option): nothing to build.
        self.in_channels, self.latent_channels = in_channels, latent_channels
        self.input_layer = SparseLinear(in_channels, model_channels[0])
        self.blocks = nn.ModuleList()
        for i in range(stages):
            stage = nn.ModuleList(
                SparseConvNeXtBlock3d(model_channels[i]) for _ in range(num_blocks[i])
            )
            if i < stages - 1:
                stage.append(SparseResBlockS2C3d(model_channels[i], model_channels[i + 1]))
            self.blocks.append(stage)
        self.to_latent = SparseLinear(model_channels[-1], 2 * latent_channels)
        if use_fp16:
            self.convert_torso(torch.float16)

    def convert_torso(self, dtype: torch.dtype) -> None:
        convert_torso(self.blocks, dtype)

    @property
    def downsamplings(self) -> int:
        return len(self.blocks) - 1

    @property
    def dtype(self) -> torch.dtype:
        linears = (m for m in self.blocks.modules() if isinstance(m, nn.Linear))
        return next((m.weight.dtype for m in linears), torch.float32)

    def encode(self, x: SparseTensor) -> tuple[SparseTensor, list[Tensor]]:
        """(N, in) voxels -> (latent mean on the coarsest voxels, the (N_i, 4) coords of every
        level from the input down to the latent's)."""
        h = self.input_layer(x)
        h = h.replace(h.feats.type(self.dtype))
        levels = [x.coords]
        for stage in self.blocks:
            for block in stage:
                h = block(h)
                if isinstance(block, SparseResBlockS2C3d):
                    levels.append(h.coords)
        feats = F.layer_norm(h.feats.type(x.feats.dtype), h.feats.shape[-1:])
        mean = self.to_latent(h.replace(feats)).feats[:, : self.latent_channels]
        return h.replace(mean), levels

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.encode(x)[0]


class FlexiDualGridVaeEncoder(SparseUnetVaeEncoder):
    def __init__(
        self,
        model_channels: Sequence[int],
        latent_channels: int,
        num_blocks: Sequence[int],
        block_type: Sequence[str],
        down_block_type: Sequence[str],
        block_args: Sequence[dict[str, Any]] = (),
        use_fp16: bool = False,
    ) -> None:
        super().__init__(
            IN_CHANNELS, model_channels, latent_channels, num_blocks, block_type,
            down_block_type, block_args, use_fp16,
        )  # fmt: skip

    def encode_grid(
        self, coords: Tensor, offsets: Tensor, intersected: Tensor
    ) -> tuple[SparseTensor, list[Tensor]]:
        """coords (N, 4) int32, dual vertices inside their voxels (N, 3) in [0, 1], flags
        (N, 3) bool -> ``encode``'s (latent, levels)."""
        feats = torch.cat([offsets.float() - 0.5, intersected.float() - 0.5], dim=1)
        return self.encode(SparseTensor(feats, coords))


def subdivisions(levels: Sequence[Tensor]) -> list[Tensor]:
    """The (P, 8) bool masks that climb from ``levels[-1]`` (in its order) back to each finer
    level, in the order a decoder's Channel2Spatial makes its children (parent by parent, sub
    index ``x%2 + 2 y%2 + 4 z%2`` increasing): the texture decoder's ``guide_subs``."""
    masks: list[Tensor] = []
    parents = levels[-1]
    offsets = torch.tensor(
        [[s % 2, s // 2 % 2, s // 4 % 2] for s in range(8)], device=parents.device
    )
    for finer in reversed(levels[:-1]):
        span = int(finer[:, 1:].max()) + 2 if len(finer) else 2
        wanted = _keys(finer, span)
        order = torch.argsort(wanted)
        wanted = wanted[order]
        children = parents[:, None, 1:].long() * 2 + offsets[None]  # (P, 8, 3)
        batch = parents[:, None, :1].long().expand(-1, 8, 1)
        candidates = torch.cat([batch, children], dim=2).reshape(-1, 4)
        keys = _keys(candidates, span)
        slot = torch.searchsorted(wanted, keys).clamp(max=len(wanted) - 1)
        mask = (wanted[slot] == keys).reshape(-1, 8)
        masks.append(mask)
        parents = candidates[mask.reshape(-1)].int()
    return masks


def _keys(coords: Tensor, span: int) -> Tensor:
    c = coords.long()
    return ((c[:, 0] * span + c[:, 1]) * span + c[:, 2]) * span + c[:, 3]
