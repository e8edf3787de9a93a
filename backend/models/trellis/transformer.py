"""Transformer pieces shared by TRELLIS's dense (SS flow) and sparse (SLat flow, decoders) nets.

The block maths is written once, over features whose last axis is channels; where dense and
sparse differ -- how tokens are laid out -- the block asks a *token layout*:

- ``DenseTokens``: features (B, L, C); per-sample values broadcast as (B, 1, C); attention is
  one SDPA over each sample's L tokens.
- ``backend.models.sparse.SparseTokens(x)``: features (N, C) of a ``SparseTensor``; per-sample
  values broadcast by batch element; full (varlen) or swin-window self attention.

Upstream semantics kept (``trellis/modules/transformer``, ``trellis/modules/sparse/transformer``,
``trellis/models/sparse_structure_flow.py``):

- timestep embedding: sinusoid of dim 256 with ``freqs = exp(-ln(10000) i / 128)``, **[cos, sin]**,
  then Linear, SiLU, Linear (the model is called with ``1000 t``);
- absolute position embedding: per axis ``freq_dim = C // 3 // 2`` frequencies
  ``1 / 10000^(i / freq_dim)``, **[sin, cos]** per axis, axes concatenated x|y|z, zero-padded to C;
- ``MultiHeadRMSNorm``: ``normalize(x.float()) * gamma[H, D] * sqrt(D)``;
- modulated cross block: adaLN chunks (shift, scale, gate) for attention then MLP; LayerNorms
  in fp32 with eps 1e-6 -- norm1/norm3 without affine, norm2 (before cross attention) affine and
  unmodulated; GELU(tanh) MLP; SDPA scale 1/sqrt(D).

Parameter names are upstream's (``self_attn.to_qkv``, ``cross_attn.to_kv``, ``mlp.mlp.0``,
``adaLN_modulation.1``, ``t_embedder.mlp.0`` ...), so official state dicts load as they are.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse.attention import token_attention
from backend.models.sparse.conv import SubmanifoldKernel
from backend.models.sparse.norm import LayerNorm32
from backend.models.trellis.condition import CrossContext

# Module types whose parameters live in the "torso" dtype (upstream's convert_module_to_f16).
TORSO_MODULES = (nn.Linear, nn.Conv3d, SubmanifoldKernel)


def convert_torso(module: nn.Module, dtype: torch.dtype) -> None:
    """Cast the Linear / conv weights under ``module`` to ``dtype``; norms and buffers stay."""
    for child in module.modules():
        if isinstance(child, TORSO_MODULES):
            for parameter in child.parameters(recurse=False):
                parameter.data = parameter.data.to(dtype)


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) timesteps (already x1000) -> (B, dim) float32 sinusoids, cosines first."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class TimestepEmbedder(nn.Module):
    """Sinusoid of the timestep -> MLP (keys ``mlp.0``, ``mlp.2``)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size))


class AbsolutePositionEmbedder(nn.Module):
    """(N, 3) integer positions -> (N, channels) float32 sin/cos features (no parameters)."""

    def __init__(self, channels: int, in_channels: int = 3) -> None:
        super().__init__()
        self.channels = channels
        self.in_channels = in_channels
        self.freq_dim = channels // in_channels // 2

    def forward(self, positions: Tensor) -> Tensor:
        n, axes = positions.shape
        if axes != self.in_channels:
            raise ValueError(f"{axes} position axes for an embedder of {self.in_channels}")
        # Built per call in float32 (upstream keeps them as a plain float32 attribute), so a
        # model cast to half never rounds the frequencies.
        exponents = torch.arange(self.freq_dim, dtype=torch.float32) / self.freq_dim
        freqs = (1.0 / (10000**exponents)).to(positions.device)
        angles = torch.outer(positions.reshape(-1).float(), freqs)
        embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(n, -1)
        if embedding.shape[1] < self.channels:
            padding = embedding.new_zeros(n, self.channels - embedding.shape[1])
            embedding = torch.cat([embedding, padding], dim=-1)
        return embedding


class MultiHeadRMSNorm(nn.Module):
    """Per-head RMS norm of queries/keys (..., H, D): ``normalize * gamma * sqrt(D)``, fp32."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(heads, dim))

    def forward(self, x: Tensor) -> Tensor:
        return (F.normalize(x.float(), dim=-1) * self.gamma * self.scale).to(x.dtype)


class FeedForwardNet(nn.Module):
    """Linear -> GELU(tanh) -> Linear (keys ``mlp.0``, ``mlp.2``)."""

    def __init__(self, channels: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class TokenLayout(Protocol):
    """What a block needs to know about how its tokens are laid out (dense or sparse)."""

    def per_sample(self, values: Tensor) -> Tensor:
        """(B, C) per-sample values, broadcastable against the features."""
        ...

    def self_attention(
        self, q: Tensor, k: Tensor, v: Tensor, window: tuple[int, int] | None = None
    ) -> Tensor:
        """Per-sample self attention of (..., H, D) tokens; ``window`` = (size, shift) swin."""
        ...

    def cross_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Tokens (..., H, D) attend to their sample's dense context k/v (B, L, H, D)."""
        ...


class DenseTokens:
    """Token layout of dense features (B, L, C)."""

    def per_sample(self, values: Tensor) -> Tensor:
        return values.unsqueeze(1)

    def self_attention(
        self, q: Tensor, k: Tensor, v: Tensor, window: tuple[int, int] | None = None
    ) -> Tensor:
        if window is not None:
            raise NotImplementedError("windowed attention needs sparse tokens")
        return token_attention(q, k, v)

    def cross_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return token_attention(q, k, v)


class MultiHeadSelfAttention(nn.Module):
    """Self attention (keys ``to_qkv``, ``q_rms_norm``/``k_rms_norm``, ``to_out``)."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        qk_rms_norm: bool = False,
        qkv_bias: bool = True,
        window: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.window = window
        self.to_qkv = nn.Linear(channels, channels * 3, bias=qkv_bias)
        self.qk_rms_norm = qk_rms_norm
        if qk_rms_norm:
            self.q_rms_norm = MultiHeadRMSNorm(channels // num_heads, num_heads)
            self.k_rms_norm = MultiHeadRMSNorm(channels // num_heads, num_heads)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: Tensor, tokens: TokenLayout) -> Tensor:
        qkv = self.to_qkv(x).unflatten(-1, (3, self.num_heads, -1))
        q, k, v = qkv.unbind(dim=-3)
        if self.qk_rms_norm:
            q, k = self.q_rms_norm(q), self.k_rms_norm(k)
        h = tokens.self_attention(q, k, v, self.window)
        return self.to_out(h.flatten(-2))


class MultiHeadCrossAttention(nn.Module):
    """Cross attention to a dense context (keys ``to_q``, ``to_kv``, ``to_out``)."""

    def __init__(
        self,
        channels: int,
        ctx_channels: int,
        num_heads: int,
        qk_rms_norm: bool = False,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} heads")
        self.num_heads = num_heads
        self.to_q = nn.Linear(channels, channels, bias=qkv_bias)
        self.to_kv = nn.Linear(ctx_channels, channels * 2, bias=qkv_bias)
        self.qk_rms_norm = qk_rms_norm
        if qk_rms_norm:
            self.q_rms_norm = MultiHeadRMSNorm(channels // num_heads, num_heads)
            self.k_rms_norm = MultiHeadRMSNorm(channels // num_heads, num_heads)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: Tensor, context: Tensor, tokens: TokenLayout) -> Tensor:
        return self.attend(x, *self.keys_values(context), tokens)

    def keys_values(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """The context's keys and values (B, L, H, D), k RMS-normed where the block does."""
        k, v = self.to_kv(context).unflatten(-1, (2, self.num_heads, -1)).unbind(dim=-3)
        if self.qk_rms_norm:
            k = self.k_rms_norm(k)
        return k, v

    def attend(self, x: Tensor, k: Tensor, v: Tensor, tokens: TokenLayout) -> Tensor:
        """The tokens ``x`` (already normed) attend to keys/values from ``keys_values``."""
        q = self.to_q(x).unflatten(-1, (self.num_heads, -1))
        if self.qk_rms_norm:
            q = self.q_rms_norm(q)
        return self.to_out(tokens.cross_attention(q, k, v).flatten(-2))


class ModulatedTransformerCrossBlock(nn.Module):
    """adaLN-modulated self attention, unmodulated cross attention, modulated MLP."""

    # A subclass swaps the self attention (TRELLIS.2's rotary one) without building this one.
    self_attention_type: type[MultiHeadSelfAttention] = MultiHeadSelfAttention

    def __init__(
        self,
        channels: int,
        ctx_channels: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_rms_norm: bool = False,
        qk_rms_norm_cross: bool = False,
        qkv_bias: bool = True,
        share_mod: bool = False,
    ) -> None:
        super().__init__()
        self.share_mod = share_mod
        self.norm1 = LayerNorm32(channels, elementwise_affine=False, eps=1e-6)
        self.norm2 = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.norm3 = LayerNorm32(channels, elementwise_affine=False, eps=1e-6)
        self.self_attn = self.self_attention_type(channels, num_heads, qk_rms_norm, qkv_bias)
        self.cross_attn = MultiHeadCrossAttention(
            channels, ctx_channels, num_heads, qk_rms_norm_cross, qkv_bias
        )
        self.mlp = FeedForwardNet(channels, mlp_ratio)
        if not share_mod:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 6 * channels))

    def forward(
        self,
        x: Tensor,
        mod: Tensor,
        context: Tensor | CrossContext,
        tokens: TokenLayout,
        **attn: Tensor | None,
    ) -> Tensor:
        """x: features (dense (B, L, C) or sparse (N, C)); mod (B, C) (or (B, 6C) shared);
        ``context``: the condition tokens (B, L, Cc), or this block's ``CrossContext`` of them
        prepared once per sampling run; ``attn``: extra arguments of the self attention
        (TRELLIS.2's RoPE phases)."""
        if not self.share_mod:
            mod = self.adaLN_modulation(mod)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            tokens.per_sample(chunk) for chunk in mod.chunk(6, dim=1)
        )
        if isinstance(context, CrossContext):  # the fast path (``sparse.fastpath``)
            # addcmul: a * b + c in one pass, rounded once (twice in the plain order)
            h = torch.addcmul(shift_msa, self.norm1(x), 1 + scale_msa)
            x = torch.addcmul(x, self.self_attn(h, tokens, **attn), gate_msa)
            x = context.add_attention(x, self.norm2, self.cross_attn, tokens)
            h = torch.addcmul(shift_mlp, self.norm3(x), 1 + scale_mlp)
            return torch.addcmul(x, self.mlp(h), gate_mlp)
        h = self.norm1(x) * (1 + scale_msa) + shift_msa
        x = x + self.self_attn(h, tokens, **attn) * gate_msa
        x = x + self.cross_attn(self.norm2(x), context, tokens)
        h = self.norm3(x) * (1 + scale_mlp) + shift_mlp
        return x + self.mlp(h) * gate_mlp


class TransformerBlock(nn.Module):
    """Pre-norm self attention (full or swin window) + MLP, unmodulated (keys attn, mlp)."""

    def __init__(
        self,
        channels: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        window: tuple[int, int] | None = None,
        qk_rms_norm: bool = False,
        qkv_bias: bool = True,
        ln_affine: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(channels, elementwise_affine=ln_affine, eps=1e-6)
        self.norm2 = LayerNorm32(channels, elementwise_affine=ln_affine, eps=1e-6)
        self.attn = MultiHeadSelfAttention(channels, num_heads, qk_rms_norm, qkv_bias, window)
        self.mlp = FeedForwardNet(channels, mlp_ratio)

    def forward(self, x: Tensor, tokens: TokenLayout) -> Tensor:
        x = x + self.attn(self.norm1(x), tokens)
        return x + self.mlp(self.norm2(x))
