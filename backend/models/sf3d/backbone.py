"""SF3D's two-stream interleaved transformer: triplane tokens <-> latent tokens <-> image.

A small set of latent tokens (image tokens projected, plus learned latents) does the heavy
attention; each block first fuses the triplane stream into the latents (cross-attention), runs
``num_basic_blocks`` self+cross(image)-attention blocks on the latents, then fuses the latents
back into the triplane stream. Triplane tokens never attend to each other directly, which keeps
the 27k-token triplane affordable. Names match the official checkpoint (``backbone.*``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.sf3d.config import BackboneConfig


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x_q`` over ``x_kv`` (no qkv bias by default)."""

    def __init__(self, dim: int, kv_dim: int | None, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        kv_dim = kv_dim or dim
        self.heads = heads
        self.wq = nn.Linear(dim, dim, bias=qkv_bias)
        self.wk = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.wv = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        batch, n_q, width = x_q.shape
        head_dim = width // self.heads
        q = self.wq(x_q).reshape(batch, n_q, self.heads, head_dim).transpose(1, 2)
        k = self.wk(x_kv).reshape(batch, -1, self.heads, head_dim).transpose(1, 2)
        v = self.wv(x_kv).reshape(batch, -1, self.heads, head_dim).transpose(1, 2)
        out = nnf.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n_q, width))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * nnf.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU (4x) then a projection; index 1 is the (inference-inert) dropout slot."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult,
                                                                                  dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.net:
            x = module(x)
        return x


class BasicBlock(nn.Module):
    """Self-attention, cross-attention to ``context`` (itself if None), feed-forward."""

    def __init__(self, dim: int, kv_dim: int | None, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = CrossAttention(dim, dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = CrossAttention(dim, kv_dim, heads, qkv_bias)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        z_norm = self.norm1(z)
        z = z + self.attn1(z_norm, z_norm)
        z_norm = self.norm2(z)
        z = z + self.attn2(z_norm, context if context is not None else z_norm)
        return z + self.ff(self.norm3(z))


class FuseBlock(nn.Module):
    """Fuse ``x`` into ``z``: z += attn(norm(z), x); z += ff(norm(z))."""

    def __init__(self, dim_z: int, dim_x: int, heads: int, qkv_bias: bool,
                 norm_x_input: bool) -> None:
        super().__init__()
        self.norm_x = nn.LayerNorm(dim_x) if norm_x_input else None
        self.attn = CrossAttention(dim_z, dim_x, heads, qkv_bias)
        self.norm_z1 = nn.LayerNorm(dim_z)
        self.norm_z2 = nn.LayerNorm(dim_z)
        self.ff = FeedForward(dim_z)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = z + self.attn(self.norm_z1(z), self.norm_x(x) if self.norm_x is not None else x)
        return z + self.ff(self.norm_z2(z))


class TwoStreamBlock(nn.Module):
    def __init__(self, dim_latent: int, dim_input: int, basic_blocks: int, heads: int,
                 qkv_bias: bool, norm_x_input: bool, dim_cross: int | None) -> None:
        super().__init__()
        self.fuse_block_in = FuseBlock(dim_latent, dim_input, heads, qkv_bias, norm_x_input)
        self.transformer_block = nn.ModuleList(
            BasicBlock(dim_latent, dim_cross, heads, qkv_bias) for _ in range(basic_blocks)
        )
        self.fuse_block_out = FuseBlock(dim_input, dim_latent, heads, qkv_bias, norm_x_input)

    def forward(self, latent: torch.Tensor, triplane: torch.Tensor,
                image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.fuse_block_in(latent, triplane)
        for block in self.transformer_block:
            latent = block(latent, image)
        return latent, self.fuse_block_out(triplane, latent)


class TwoStreamTransformer(nn.Module):
    """(B, C, N) triplane tokens + (B, M, D) image tokens -> refined (B, C, N) tokens."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        latent_dim = config.num_attention_heads * config.attention_head_dim
        raw = config.raw_triplane_channels
        if config.norm_num_groups > 0:
            self.norm_triplane: nn.Module = nn.GroupNorm(config.norm_num_groups, raw, eps=1e-6)
        else:
            self.norm_triplane = nn.LayerNorm(raw)
        self.proj_triplane = nn.Linear(raw, config.triplane_channels)
        self.mix_latent = config.mix_latent
        if config.mix_latent:
            self.norm_image = nn.LayerNorm(config.raw_image_channels)
            self.proj_image = nn.Linear(config.raw_image_channels, latent_dim)
        self.norm_latent = nn.LayerNorm(latent_dim)
        self.proj_latent = nn.Linear(latent_dim, latent_dim)
        self.latent_init = nn.Parameter(torch.randn(1, config.num_latents, latent_dim) * 0.02)
        self.main_blocks = nn.ModuleList(
            TwoStreamBlock(latent_dim, config.triplane_channels, config.num_basic_blocks,
                           config.num_attention_heads, config.attention_bias,
                           config.norm_x_input, config.cross_attention_dim)
            for _ in range(config.num_blocks)
        )
        self.proj_out = nn.Linear(config.triplane_channels, raw)

    def forward(self, tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        if isinstance(self.norm_triplane, nn.GroupNorm):
            triplane = self.norm_triplane(tokens).permute(0, 2, 1)
        else:
            triplane = self.norm_triplane(tokens.permute(0, 2, 1))
        triplane = self.proj_triplane(triplane)
        latent = self.proj_latent(self.norm_latent(self.latent_init.expand(tokens.shape[0], -1,
                                                                            -1)))
        if self.mix_latent:
            latent = torch.cat([self.proj_image(self.norm_image(image_tokens)), latent], dim=1)
        for block in self.main_blocks:
            latent, triplane = block(latent, triplane, image_tokens)
        return self.proj_out(triplane).permute(0, 2, 1) + tokens
