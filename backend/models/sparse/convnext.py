"""TRELLIS.2's sparse convolutional blocks: ConvNeXt-style blocks and S2C / C2S residual blocks.

Upstream: ``trellis2/models/sc_vaes/sparse_unet_vae.py``, with the FlexGEMM conv backend the
release runs (``trellis2/modules/sparse/conv/conv_flex_gemm.py``): a conv's parameters sit
directly on the layer (``conv.weight`` (Co, K, K, K, Ci), ``conv.bias``), one level less than
TRELLIS v1's spconv wrapper (``conv.conv.weight``). The kernel axes are taken in coordinate order
x, y, z, as for spconv (``backend.models.sparse.conv``).

- ``SparseConvNeXtBlock3d``: ``x + mlp(norm(conv(x)))``; ``norm`` affine LN (eps 1e-6), ``mlp``
  Linear (C -> 4C), SiLU, Linear (keys ``mlp.0``, ``mlp.2``).
- ``SparseResBlockS2C3d`` (down): LN+SiLU, ``conv1`` to Co/8, Spatial2Channel (-> Co), LN (no
  affine)+SiLU, ``conv2``; skip = Spatial2Channel of the input averaged over groups of
  ``8 C / Co`` channels.
- ``SparseResBlockC2S3d`` (up): ``to_subdiv`` (Linear C -> 8, logits of which children exist)
  when the block predicts its subdivision, LN+SiLU, ``conv1`` to 8 Co, Channel2Spatial (-> Co),
  LN+SiLU, ``conv2``; skip = Channel2Spatial of the input, each channel repeated
  ``Co / (C / 8)`` times. A decoder without ``to_subdiv`` is given the subdivisions another
  decoder predicted (the texture decoder follows the shape decoder's).
"""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse.conv import SubmanifoldKernel, neighbour_map, submanifold_conv3d
from backend.models.sparse.modules import SparseLinear
from backend.models.sparse.norm import LayerNorm32
from backend.models.sparse.spatial2channel import channel_to_spatial, spatial_to_channel
from backend.models.sparse.tensor import SparseTensor


class SubmanifoldConv3d(SubmanifoldKernel):
    """Submanifold conv with its parameters on the layer itself (``weight``, ``bias``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, out_channels, kernel_size, bias=True)

    def forward(self, x: SparseTensor) -> SparseTensor:
        neighbours = neighbour_map(x, self.kernel_size)
        return x.replace(submanifold_conv3d(x.feats, neighbours, self.weight, self.bias))


def _norm_silu(norm: nn.Module, x: SparseTensor) -> SparseTensor:
    return x.replace(F.silu(norm(x.feats)))


class SparseConvNeXtBlock3d(nn.Module):
    def __init__(self, channels: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.norm = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.conv = SubmanifoldConv3d(channels, channels, 3)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels)
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = self.conv(x)
        return x.replace(x.feats + self.mlp(self.norm(h.feats)))


class SparseResBlockS2C3d(nn.Module):
    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 8 or (channels * 8) % out_channels:
            raise ValueError(f"S2C from {channels} to {out_channels} channels does not divide")
        self.channels, self.out_channels = channels, out_channels
        self.norm1 = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.norm2 = LayerNorm32(out_channels, elementwise_affine=False, eps=1e-6)
        self.conv1 = SubmanifoldConv3d(channels, out_channels // 8, 3)
        self.conv2 = SubmanifoldConv3d(out_channels, out_channels, 3)

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = spatial_to_channel(self.conv1(_norm_silu(self.norm1, x)))
        h = self.conv2(_norm_silu(self.norm2, h))
        skip = spatial_to_channel(x).feats
        skip = skip.reshape(len(skip), self.out_channels, -1).mean(dim=-1)
        return h.replace(h.feats + skip)


class SparseResBlockC2S3d(nn.Module):
    def __init__(self, channels: int, out_channels: int, pred_subdiv: bool = True) -> None:
        super().__init__()
        if channels % 8 or out_channels % (channels // 8):
            raise ValueError(f"C2S from {channels} to {out_channels} channels does not divide")
        self.channels, self.out_channels, self.pred_subdiv = channels, out_channels, pred_subdiv
        self.norm1 = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.norm2 = LayerNorm32(out_channels, elementwise_affine=False, eps=1e-6)
        self.conv1 = SubmanifoldConv3d(channels, out_channels * 8, 3)
        self.conv2 = SubmanifoldConv3d(out_channels, out_channels, 3)
        if pred_subdiv:
            self.to_subdiv = SparseLinear(channels, 8)

    def forward(
        self, x: SparseTensor, subdivision: Tensor | None = None
    ) -> tuple[SparseTensor, Tensor]:
        """-> (upsampled tensor, the (P, 8) bool subdivision used)."""
        if self.pred_subdiv:
            subdivision = self.to_subdiv(x).feats > 0
        if subdivision is None:
            raise ValueError("this block does not predict its subdivision: pass one")
        h = channel_to_spatial(self.conv1(_norm_silu(self.norm1, x)), subdivision)
        h = self.conv2(_norm_silu(self.norm2, h))
        skip = channel_to_spatial(x, subdivision).feats
        skip = skip.repeat_interleave(self.out_channels // (self.channels // 8), dim=1)
        return h.replace(h.feats + skip), subdivision
