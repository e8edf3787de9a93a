"""Per-voxel layers and the convolutional blocks of TRELLIS's sparse networks.

Parameter names follow upstream so official state dicts load unchanged:

- ``SparseLinear``: ``weight`` / ``bias`` (an ``nn.Linear`` on the features).
- ``SparseResBlock3d`` (``trellis/models/structured_latent_flow.py``): ``norm1`` (affine LN),
  ``conv1``, ``conv2``, ``emb_layers.1`` and, when the width changes, ``skip_connection``.
  Modulation chunks are (scale, shift) -- scale first, unlike adaLN -- and any
  down/upsampling happens before the convolutions.
- ``SparseSubdivideBlock3d`` (``trellis/models/structured_latent_vae/decoder_mesh.py``):
  ``act_layers.0`` (GroupNorm), ``out_layers.{0,1,3}`` (conv, GroupNorm, conv) and a 1x1x1
  conv ``skip_connection`` when the width changes (spconv's 1x1x1 reading of its weight: see
  ``backend.models.sparse.conv.pointwise_weight``).
"""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse.conv import SparseConv3d
from backend.models.sparse.norm import LayerNorm32, SparseGroupNorm32
from backend.models.sparse.spatial import SparseDownsample, SparseSubdivide, SparseUpsample
from backend.models.sparse.tensor import SparseTensor


class SparseLinear(nn.Linear):
    """``nn.Linear`` applied to every voxel's features."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace(super().forward(x.feats))


class SparseSiLU(nn.Module):
    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace(F.silu(x.feats))


class SparseResBlock3d(nn.Module):
    """Two 3x3x3 submanifold convs with a timestep-modulated LayerNorm between them."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        downsample: bool = False,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        if downsample and upsample:
            raise ValueError("a block either downsamples or upsamples")
        self.out_channels = out_channels or channels
        self.norm1 = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.norm2 = LayerNorm32(self.out_channels, elementwise_affine=False, eps=1e-6)
        self.conv1 = SparseConv3d(channels, self.out_channels, 3)
        self.conv2 = SparseConv3d(self.out_channels, self.out_channels, 3)
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * self.out_channels))
        self.skip_connection: nn.Module = (
            SparseLinear(channels, self.out_channels)
            if channels != self.out_channels
            else nn.Identity()
        )
        self.updown: nn.Module | None = None
        if downsample:
            self.updown = SparseDownsample(2)
        elif upsample:
            self.updown = SparseUpsample(2)

    def forward(self, x: SparseTensor, emb: Tensor) -> SparseTensor:
        scale, shift = self.emb_layers(emb).to(x.dtype).chunk(2, dim=1)
        if self.updown is not None:
            x = self.updown(x)
        h = self.conv1(x.replace(F.silu(self.norm1(x.feats))))
        feats = self.norm2(h.feats) * (1 + x.per_sample(scale)) + x.per_sample(shift)
        h = self.conv2(h.replace(F.silu(feats)))
        return h.replace(h.feats + self.skip_connection(x).feats)


class SparseSubdivideBlock3d(nn.Module):
    """GroupNorm + SiLU, subdivide (x2 resolution), conv -> GroupNorm -> SiLU -> conv, + skip."""

    def __init__(
        self,
        channels: int,
        resolution: int,
        out_channels: int | None = None,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.out_resolution = resolution * 2
        self.out_channels = out_channels or channels
        self.act_layers = nn.Sequential(SparseGroupNorm32(num_groups, channels), SparseSiLU())
        self.sub = SparseSubdivide()
        self.out_layers = nn.Sequential(
            SparseConv3d(channels, self.out_channels, 3),
            SparseGroupNorm32(num_groups, self.out_channels),
            SparseSiLU(),
            SparseConv3d(self.out_channels, self.out_channels, 3),
        )
        self.skip_connection: nn.Module = (
            nn.Identity()
            if self.out_channels == channels
            else SparseConv3d(channels, self.out_channels, 1)
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = self.sub(self.act_layers(x))
        x = self.sub(x)
        h = self.out_layers(h)
        return h.replace(h.feats + self.skip_connection(x).feats)
