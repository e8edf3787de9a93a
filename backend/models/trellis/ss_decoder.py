"""The sparse-structure decoder: structure latent (8 x 16^3) -> occupancy logits (1 x 64^3).

``SparseStructureDecoder`` (upstream ``trellis/models/sparse_structure_vae.py``) is dense
``nn.Conv3d`` only: an input conv, middle residual blocks, then per channel stage residual blocks
and (between stages) a conv to 8x the next stage's channels followed by a 3D pixel shuffle that
doubles the grid, then channel-LayerNorm, SiLU and an output conv. Residual blocks are
``conv1(silu(norm1(x)))``, ``conv2(silu(norm2(h)))``, ``+ x``; the norms are a float32 LayerNorm
over channels per voxel (affine, eps 1e-5). The occupied voxels are where the logit is > 0,
as (batch, x, y, z) rows in row-major order (:func:`occupied_coords`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.trellis.config import SSDecoderConfig
from backend.models.trellis.transformer import convert_torso


class ChannelLayerNorm32(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, C, ...) in float32, returned in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = x.dim()
        h = x.permute(0, *range(2, dims), 1).contiguous()
        h = super().forward(h.float()).type(x.dtype)
        return h.permute(0, dims - 1, *range(1, dims - 1)).contiguous()


class GroupNorm32(nn.GroupNorm):
    """GroupNorm in float32, returned in the input dtype (``norm_type="group"``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def norm_layer(norm_type: str, channels: int) -> nn.Module:
    return GroupNorm32(32, channels) if norm_type == "group" else ChannelLayerNorm32(channels)


def pixel_shuffle_3d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C * f^3, X, Y, Z) -> (B, C, fX, fY, fZ); channel index = c * f^3 + (i * f + j) * f + k
    goes to voxel (f x + i, f y + j, f z + k)."""
    b, c, *sides = x.shape
    out = c // factor**3
    x = x.reshape(b, out, factor, factor, factor, *sides).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, out, *(s * factor for s in sides))


class ResBlock3d(nn.Module):
    def __init__(self, channels: int, out_channels: int, norm_type: str) -> None:
        super().__init__()
        self.norm1 = norm_layer(norm_type, channels)
        self.norm2 = norm_layer(norm_type, out_channels)
        self.conv1 = nn.Conv3d(channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1)
        self.skip_connection = (
            nn.Conv3d(channels, out_channels, 1) if channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nnf.silu(self.norm1(x)))
        h = self.conv2(nnf.silu(self.norm2(h)))
        return h + self.skip_connection(x)


class UpsampleBlock3d(nn.Module):
    """Conv3d to 8x the output channels, then a factor-2 pixel shuffle (upstream's "conv" mode)."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, out_channels * 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(self.conv(x), 2)


class SparseStructureDecoder(nn.Module):
    """``forward(z (B, latent, R, R, R)) -> logits (B, out, R * upscale, ...)`` in float32."""

    def __init__(self, config: SSDecoderConfig) -> None:
        super().__init__()
        self.config = config
        channels, norm = config.channels, config.norm_type
        self.dtype = torch.float32
        self.input_layer = nn.Conv3d(config.latent_channels, channels[0], 3, padding=1)
        self.middle_block = nn.Sequential(
            *(
                ResBlock3d(channels[0], channels[0], norm)
                for _ in range(config.num_res_blocks_middle)
            )
        )
        blocks: list[nn.Module] = []
        for index, width in enumerate(channels):
            blocks += [ResBlock3d(width, width, norm) for _ in range(config.num_res_blocks)]
            if index < len(channels) - 1:
                blocks.append(UpsampleBlock3d(width, channels[index + 1]))
        self.blocks = nn.ModuleList(blocks)
        self.out_layer = nn.Sequential(
            norm_layer(norm, channels[-1]),
            nn.SiLU(),
            nn.Conv3d(channels[-1], config.out_channels, 3, padding=1),
        )
        if config.use_fp16:  # as upstream: the network is built in its stored dtypes
            self.convert_torso(torch.float16)

    def convert_torso(self, dtype: torch.dtype) -> None:
        """Run (and hold) the residual and upsampling blocks' convs in ``dtype``."""
        for part in (self.blocks, self.middle_block):
            convert_torso(part, dtype)
        self.dtype = dtype

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(z).type(self.dtype)
        h = self.middle_block(h)
        for block in self.blocks:
            h = block(h)
        return self.out_layer(h.type(z.dtype))


def occupied_coords(logits: torch.Tensor) -> torch.Tensor:
    """logits (B, 1, X, Y, Z) -> (N, 4) int32 rows (batch, x, y, z) where the logit is > 0,
    sorted by batch then x, y, z (what ``argwhere`` gives, and what the SLat stage expects)."""
    return torch.argwhere(logits > 0)[:, [0, 2, 3, 4]].int()
