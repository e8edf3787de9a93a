"""The sparse-structure flow: a dense DiT that denoises TRELLIS's 8 x 16^3 structure latent.

``SparseStructureFlowModel`` (upstream ``trellis/models/sparse_structure_flow.py``): the latent
grid is cut into patches (patch size 1: 4096 tokens of 8 channels, x-major order), embedded by
``input_layer``, given the stored absolute position embedding ``pos_emb``, run through
``num_blocks`` modulated cross-attention blocks in the torso dtype, then layer-normed (no affine)
and projected back. The model is called with ``t * 1000``.

The blocks, the timestep embedder and the q/k RMS norm are the shared ones of
``transformer.py`` (the SLat flow runs the same block over sparse tokens), so the block maths
is written once; here they see dense tokens (``DenseTokens``). The parity traps they keep: the
timestep embedding is [cos, sin], the position embedding [sin, cos] per axis zero-padded to the
width; adaLN chunks are shift, scale, gate for attention then for the MLP; the cross-attention's
norm has an affine and no modulation; q/k RMS norm is ``normalize(x) * gamma * sqrt(head_dim)``
in float32. Parameter names are the checkpoint's.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.trellis.condition import PreparedCondition, block_contexts
from backend.models.trellis.config import SSFlowConfig
from backend.models.trellis.transformer import (
    AbsolutePositionEmbedder,
    DenseTokens,
    ModulatedTransformerCrossBlock,
    MultiHeadRMSNorm,
    TimestepEmbedder,
    convert_torso,
    timestep_embedding,
)

__all__ = [
    "ModulatedTransformerCrossBlock",
    "MultiHeadRMSNorm",
    "SparseStructureFlowModel",
    "grid_coords",
    "patchify",
    "position_embedding",
    "timestep_embedding",
    "unpatchify",
]

DENSE_TOKENS = DenseTokens()


def position_embedding(coords: torch.Tensor, channels: int) -> torch.Tensor:
    """coords (N, D) -> (N, channels) float32: per axis [sin, cos] of D x (channels // D // 2)
    frequencies, axes concatenated in order, zero-padded to ``channels``."""
    return AbsolutePositionEmbedder(channels, coords.shape[1])(coords)


def grid_coords(side: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(side^3, 3) int64 coordinates of a cube grid, x-major (``meshgrid(indexing='ij')``)."""
    axis = torch.arange(side, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B, C * patch^3, X/p, Y/p, Z/p), channels then in-patch offsets."""
    b, c, *sides = x.shape
    x = x.reshape(
        b, c, sides[0] // patch, patch, sides[1] // patch, patch, sides[2] // patch, patch
    )
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * patch**3, *(s // patch for s in sides))


def unpatchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of :func:`patchify`."""
    b, cp, *sides = x.shape
    x = x.reshape(b, cp // patch**3, patch, patch, patch, *sides)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, cp // patch**3, *(s * patch for s in sides))


class SparseStructureFlowModel(nn.Module):
    """The SS flow network; ``forward(x (B, C, R, R, R), t (B,) = 1000 t, cond (B, L, Cc))``."""

    def __init__(self, config: SSFlowConfig) -> None:
        super().__init__()
        self.config = config
        self.resolution, self.in_channels = config.resolution, config.in_channels
        channels, patch = config.model_channels, config.patch_size
        self.t_embedder = TimestepEmbedder(channels)
        # A persistent buffer: the released file stores it (fp32), and it is loaded, not rebuilt.
        self.register_buffer(
            "pos_emb", position_embedding(grid_coords(config.resolution // patch), channels)
        )
        self.input_layer = nn.Linear(config.in_channels * patch**3, channels)
        self.blocks = nn.ModuleList(
            ModulatedTransformerCrossBlock(
                channels,
                config.cond_channels,
                num_heads=config.heads,
                mlp_ratio=config.mlp_ratio,
                qk_rms_norm=config.qk_rms_norm,
                qk_rms_norm_cross=config.qk_rms_norm_cross,
            )
            for _ in range(config.num_blocks)
        )
        self.out_layer = nn.Linear(channels, config.out_channels * patch**3)
        if config.use_fp16:  # as upstream: the network is built in its stored dtypes
            self.convert_torso(torch.float16)

    def convert_torso(self, dtype: torch.dtype) -> None:
        """Run (and hold) the blocks' linear layers in ``dtype``; the rest stays float32."""
        convert_torso(self.blocks, dtype)

    @property
    def dtype(self) -> torch.dtype:
        """The torso's compute dtype (that of its weights)."""
        return self.blocks[0].self_attn.to_qkv.weight.dtype if len(self.blocks) else torch.float32

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | PreparedCondition
    ) -> torch.Tensor:
        """``cond``: the condition tokens, or a ``PreparedCondition`` of them (the same maths)."""
        patch = self.config.patch_size
        h = patchify(x, patch)
        h = h.reshape(*h.shape[:2], -1).transpose(1, 2)
        h = self.input_layer(h) + self.pos_emb[None]
        t_emb = self.t_embedder(t).type(self.dtype)
        h = h.type(self.dtype)
        contexts = block_contexts(cond, self.blocks, self.dtype)
        for block, context in zip(self.blocks, contexts, strict=True):
            h = block(h, t_emb, context, DENSE_TOKENS)
        h = nnf.layer_norm(h.type(x.dtype), h.shape[-1:])
        h = self.out_layer(h)
        side = self.resolution // patch
        h = h.transpose(1, 2).reshape(h.shape[0], h.shape[2], side, side, side)
        return unpatchify(h, patch)
