"""TRELLIS.2's modulated cross-attention block, over dense or sparse tokens, with RoPE.

Upstream: ``trellis2/modules/transformer/modulated.py`` and its sparse twin. Same maths and keys
as TRELLIS v1's block (``backend.models.trellis.transformer``) with two additions every
released TRELLIS.2 flow uses:

- ``share_mod``: the network owns one ``adaLN_modulation`` (SiLU, Linear C -> 6C) applied to the
  timestep embedding; each block adds its own learnt ``modulation`` (6C,) vector (stored fp32,
  outside the torso cast) and casts the sum to the torso dtype;
- rotary position embedding in self attention, after the per-head RMS norm of q and k
  (``backend.models.sparse.rope``); cross attention has no RoPE but its own q/k RMS norms
  (``qk_rms_norm_cross``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.models.sparse.norm import LayerNorm32
from backend.models.sparse.rope import apply_rope
from backend.models.trellis.transformer import (
    FeedForwardNet,
    MultiHeadCrossAttention,
    MultiHeadSelfAttention,
    TokenLayout,
)


class RotarySelfAttention(MultiHeadSelfAttention):
    """Self attention with q/k rotated by per-token phases (keys as the v1 module's)."""

    def forward(self, x: Tensor, tokens: TokenLayout, phases: Tensor | None = None) -> Tensor:  # type: ignore[override]
        qkv = self.to_qkv(x).unflatten(-1, (3, self.num_heads, -1))
        q, k, v = qkv.unbind(dim=-3)
        if self.qk_rms_norm:
            q, k = self.q_rms_norm(q), self.k_rms_norm(k)
        if phases is not None:
            q, k = apply_rope(q, phases), apply_rope(k, phases)
        return self.to_out(tokens.self_attention(q, k, v).flatten(-2))


class ModulatedCrossBlock(nn.Module):
    """adaLN-modulated RoPE self attention, plain cross attention, modulated MLP."""

    def __init__(
        self,
        channels: int,
        ctx_channels: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_rms_norm: bool = False,
        qk_rms_norm_cross: bool = False,
        share_mod: bool = False,
    ) -> None:
        super().__init__()
        self.share_mod = share_mod
        self.norm1 = LayerNorm32(channels, elementwise_affine=False, eps=1e-6)
        self.norm2 = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.norm3 = LayerNorm32(channels, elementwise_affine=False, eps=1e-6)
        self.self_attn = RotarySelfAttention(channels, num_heads, qk_rms_norm)
        self.cross_attn = MultiHeadCrossAttention(
            channels, ctx_channels, num_heads, qk_rms_norm_cross
        )
        self.mlp = FeedForwardNet(channels, mlp_ratio)
        if share_mod:
            self.modulation = nn.Parameter(torch.randn(6 * channels) / channels**0.5)
        else:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 6 * channels))

    def forward(
        self,
        x: Tensor,
        mod: Tensor,
        context: Tensor,
        tokens: TokenLayout,
        phases: Tensor | None = None,
    ) -> Tensor:
        """x: (B, L, C) or (N, C); mod (B, 6C) when shared, else the (B, C) embedding."""
        if self.share_mod:
            mod = (self.modulation + mod).type(mod.dtype)
        else:
            mod = self.adaLN_modulation(mod)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            tokens.per_sample(chunk) for chunk in mod.chunk(6, dim=1)
        )
        h = self.norm1(x) * (1 + scale_msa) + shift_msa
        x = x + self.self_attn(h, tokens, phases) * gate_msa
        x = x + self.cross_attn(self.norm2(x), context, tokens)
        h = self.norm3(x) * (1 + scale_mlp) + shift_mlp
        return x + self.mlp(h) * gate_mlp
