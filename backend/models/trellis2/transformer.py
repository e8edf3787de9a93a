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

from backend.models.sparse.rope import apply_rope
from backend.models.trellis.transformer import (
    ModulatedTransformerCrossBlock,
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


class ModulatedCrossBlock(ModulatedTransformerCrossBlock):
    """adaLN-modulated RoPE self attention, plain cross attention, modulated MLP."""

    self_attention_type = RotarySelfAttention

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
        super().__init__(
            channels,
            ctx_channels,
            num_heads,
            mlp_ratio,
            qk_rms_norm,
            qk_rms_norm_cross,
            share_mod=share_mod,
        )
        if share_mod:
            self.modulation = nn.Parameter(torch.randn(6 * channels) / channels**0.5)

    def forward(  # type: ignore[override]
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
        return super().forward(x, mod, context, tokens, phases=phases)
