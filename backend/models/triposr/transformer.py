"""TripoSR's backbone: a 1D transformer over triplane tokens, cross-attending to image tokens.

Layout and key names follow the official checkpoint (``backbone.norm``, ``backbone.proj_in``,
``backbone.transformer_blocks.N.{norm1,attn1,norm2,attn2,norm3,ff}``, ``backbone.proj_out``):
group norm over channels, a linear into the block width, pre-norm blocks (self-attention,
cross-attention to the image tokens, gated-GELU feed-forward), a linear back and a residual.
Attention uses ``scaled_dot_product_attention`` so flash/memory-efficient kernels run on CUDA.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.triposr.config import TripoSRConfig


class Attention(nn.Module):
    """Multi-head attention with upstream's ``to_q``/``to_k``/``to_v``/``to_out.0`` names."""

    def __init__(
        self, query_dim: int, context_dim: int, heads: int, head_dim: int, bias: bool
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim, inner, bias=bias)
        # Index 1 upstream is a Dropout (no weights); a ModuleList keeps the ".0." key.
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])

    def forward(self, hidden: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (b, n, query_dim), context (b, m, context_dim) or None (self) -> (b, n, dim)."""
        context = hidden if context is None else context
        batch = hidden.shape[0]

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, x.shape[1], self.heads, -1).transpose(1, 2)

        out = nnf.scaled_dot_product_attention(
            split(self.to_q(hidden)), split(self.to_k(context)), split(self.to_v(context))
        )
        return self.to_out[0](out.transpose(1, 2).reshape(batch, hidden.shape[1], -1))


class GatedGelu(nn.Module):
    """GEGLU: one projection to twice the width, value * gelu(gate)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * nnf.gelu(gate)


class Gelu(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, approximate: str = "none") -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nnf.gelu(self.proj(x), approximate=self.approximate)


class SigmoidGelu(nn.Module):
    """Upstream's "geglu-approximate": x * sigmoid(1.702 x) after one projection."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return x * torch.sigmoid(1.702 * x)


def make_activation(name: str, dim_in: int, dim_out: int) -> nn.Module:
    if name == "geglu":
        return GatedGelu(dim_in, dim_out)
    if name == "gelu":
        return Gelu(dim_in, dim_out)
    if name == "gelu-approximate":
        return Gelu(dim_in, dim_out, approximate="tanh")
    if name == "geglu-approximate":
        return SigmoidGelu(dim_in, dim_out)
    raise ValueError(f"unknown feed-forward activation {name!r}")


class FeedForward(nn.Module):
    """``net.0`` activation-with-projection, ``net.1`` dropout (no weights), ``net.2`` linear."""

    def __init__(self, dim: int, activation: str, mult: int = 4) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([make_activation(activation, dim, inner), nn.Identity(),
                                  nn.Linear(inner, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.net:
            x = module(x)
        return x


class TransformerBlock(nn.Module):
    """Pre-norm block: self-attention, cross-attention to the image tokens, feed-forward."""

    def __init__(self, config: TripoSRConfig) -> None:
        super().__init__()
        dim = config.inner_dim
        heads, head_dim = config.num_attention_heads, config.attention_head_dim
        affine = config.norm_elementwise_affine
        self.only_cross_attention = config.only_cross_attention
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        first_context = config.cross_attention_dim if config.only_cross_attention else dim
        self.attn1 = Attention(dim, first_context, heads, head_dim, config.attention_bias)
        second_context = dim if config.double_self_attention else config.cross_attention_dim
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn2 = Attention(dim, second_context, heads, head_dim, config.attention_bias)
        self.double_self_attention = config.double_self_attention
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.ff = FeedForward(dim, config.activation_fn)

    def forward(self, hidden: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        first_context = image_tokens if self.only_cross_attention else None
        hidden = hidden + self.attn1(self.norm1(hidden), first_context)
        second_context = None if self.double_self_attention else image_tokens
        hidden = hidden + self.attn2(self.norm2(hidden), second_context)
        return hidden + self.ff(self.norm3(hidden))


class Transformer1D(nn.Module):
    """tokens (b, channels, n) + image tokens (b, m, cross_dim) -> tokens (b, channels, n)."""

    def __init__(self, config: TripoSRConfig) -> None:
        super().__init__()
        channels = config.token_channels
        self.norm = nn.GroupNorm(config.norm_num_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, config.inner_dim)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(config) for _ in range(config.num_layers)
        )
        self.proj_out = nn.Linear(config.inner_dim, channels)

    def forward(self, tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        residual = tokens
        device = image_tokens.device.type
        if torch.is_autocast_enabled(device):
            # Every block's key and value projections would cast the same float32 image tokens
            # (2 casts x 16 blocks); one cast here gives them the same half values.
            image_tokens = image_tokens.to(torch.get_autocast_dtype(device))
        hidden = self.proj_in(self.norm(tokens).transpose(1, 2))
        for block in self.transformer_blocks:
            hidden = block(hidden, image_tokens)
        return self.proj_out(hidden).transpose(1, 2) + residual
