"""The sparse-structure flow: a dense DiT that denoises TRELLIS's 8 x 16^3 structure latent.

``SparseStructureFlowModel`` (upstream ``trellis/models/sparse_structure_flow.py``): the latent
grid is cut into patches (patch size 1: 4096 tokens of 8 channels, x-major order), embedded by
``input_layer``, given the stored absolute position embedding ``pos_emb``, run through
``num_blocks`` modulated cross-attention blocks in the torso dtype, then layer-normed (no affine)
and projected back. The model is called with ``t * 1000``.

The transformer pieces below follow upstream's maths exactly (the parity traps: the timestep
embedding is [cos, sin], the position embedding [sin, cos] per axis zero-padded to the width;
adaLN chunks are shift, scale, gate for attention then for the MLP; the cross-attention's norm
has an affine and no modulation; q/k RMS norm is ``normalize(x) * gamma * sqrt(head_dim)`` in
float32). Parameter names are the checkpoint's. They are kept self-contained here so that
switching to the shared ones in ``transformer.py`` (the SLat flow uses the same block) is an
import change.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.trellis.config import SSFlowConfig
from backend.models.trellis.precision import cast_torso

FREQUENCY_CHANNELS = 256  # width of the sinusoidal timestep features
MAX_PERIOD = 10000.0


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = MAX_PERIOD) -> torch.Tensor:
    """t (B,) -> (B, dim) float32 sinusoids, **cos first**, zero-padded to an odd ``dim``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs.to(t.device)[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def position_embedding(coords: torch.Tensor, channels: int) -> torch.Tensor:
    """coords (N, D) -> (N, channels) float32: per axis [sin, cos] of D x (channels // D // 2)
    frequencies, axes concatenated in order, zero-padded to ``channels``."""
    count, axes = coords.shape
    freq_dim = channels // axes // 2
    freqs = 1.0 / (10000 ** (torch.arange(freq_dim, dtype=torch.float32) / freq_dim))
    phases = torch.outer(coords.reshape(-1).float(), freqs.to(coords.device))
    embedding = torch.cat([torch.sin(phases), torch.cos(phases)], dim=-1).reshape(count, -1)
    if embedding.shape[1] < channels:
        padding = torch.zeros(count, channels - embedding.shape[1], device=coords.device)
        embedding = torch.cat([embedding, padding], dim=-1)
    return embedding


def grid_coords(side: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(side^3, 3) int64 coordinates of a cube grid, x-major (``meshgrid(indexing='ij')``)."""
    axis = torch.arange(side, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype, returned in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of ``t`` -> Linear, SiLU, Linear (keys ``mlp.0``, ``mlp.2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_CHANNELS, channels), nn.SiLU(), nn.Linear(channels, channels)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, FREQUENCY_CHANNELS))


class MultiHeadRMSNorm(nn.Module):
    """Per-head RMS norm of q or k: ``normalize(x) * gamma * sqrt(head_dim)``, in float32."""

    def __init__(self, head_dim: int, heads: int) -> None:
        super().__init__()
        self.scale = head_dim**0.5
        self.gamma = nn.Parameter(torch.ones(heads, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (nnf.normalize(x.float(), dim=-1) * self.gamma * self.scale).to(x.dtype)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, L, H, D) queries against (B, S, H, D) keys/values -> (B, L, H, D); scale 1/sqrt(D)."""
    out = nnf.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class SelfAttention(nn.Module):
    """Full self-attention with a fused ``to_qkv`` and optional q/k RMS norm."""

    def __init__(self, channels: int, heads: int, qk_rms_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(channels, channels * 3)
        if qk_rms_norm:
            self.q_rms_norm = MultiHeadRMSNorm(channels // heads, heads)
            self.k_rms_norm = MultiHeadRMSNorm(channels // heads, heads)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        q, k, v = self.to_qkv(x).reshape(batch, length, 3, self.heads, -1).unbind(dim=2)
        if hasattr(self, "q_rms_norm"):
            q, k = self.q_rms_norm(q), self.k_rms_norm(k)
        return self.to_out(attention(q, k, v).reshape(batch, length, channels))


class CrossAttention(nn.Module):
    """Queries from the tokens, keys/values (fused ``to_kv``) from the condition."""

    def __init__(self, channels: int, context_channels: int, heads: int, qk_rms_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(channels, channels)
        self.to_kv = nn.Linear(context_channels, channels * 2)
        if qk_rms_norm:
            self.q_rms_norm = MultiHeadRMSNorm(channels // heads, heads)
            self.k_rms_norm = MultiHeadRMSNorm(channels // heads, heads)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        q = self.to_q(x).reshape(batch, length, self.heads, -1)
        k, v = self.to_kv(context).reshape(batch, context.shape[1], 2, self.heads, -1).unbind(2)
        if hasattr(self, "q_rms_norm"):
            q, k = self.q_rms_norm(q), self.k_rms_norm(k)
        return self.to_out(attention(q, k, v).reshape(batch, length, channels))


class FeedForwardNet(nn.Module):
    """Linear, GELU (tanh approximation), Linear; keys ``mlp.0`` and ``mlp.2``."""

    def __init__(self, channels: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class ModulatedTransformerCrossBlock(nn.Module):
    """adaLN-modulated self-attention, plain cross-attention, adaLN-modulated MLP."""

    def __init__(
        self,
        channels: int,
        context_channels: int,
        heads: int,
        mlp_ratio: float,
        qk_rms_norm: bool,
        qk_rms_norm_cross: bool,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm32(channels, elementwise_affine=False, eps=1e-6)
        self.norm2 = LayerNorm32(channels, elementwise_affine=True, eps=1e-6)
        self.norm3 = LayerNorm32(channels, elementwise_affine=False, eps=1e-6)
        self.self_attn = SelfAttention(channels, heads, qk_rms_norm)
        self.cross_attn = CrossAttention(channels, context_channels, heads, qk_rms_norm_cross)
        self.mlp = FeedForwardNet(channels, mlp_ratio)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 6 * channels))

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        modulation = self.adaLN_modulation(t_emb).unsqueeze(1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = modulation.chunk(6, dim=2)
        h = self.norm1(x) * (1 + scale_msa) + shift_msa
        x = x + self.self_attn(h) * gate_msa
        x = x + self.cross_attn(self.norm2(x), context)
        h = self.norm3(x) * (1 + scale_mlp) + shift_mlp
        return x + self.mlp(h) * gate_mlp


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
        self.dtype = torch.float32
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
                config.heads,
                config.mlp_ratio,
                config.qk_rms_norm,
                config.qk_rms_norm_cross,
            )
            for _ in range(config.num_blocks)
        )
        self.out_layer = nn.Linear(channels, config.out_channels * patch**3)
        if config.use_fp16:  # as upstream: the network is built in its stored dtypes
            self.set_torso_dtype(torch.float16)

    def set_torso_dtype(self, dtype: torch.dtype) -> None:
        """Run (and hold) the blocks' linear layers in ``dtype``; the rest stays float32."""
        cast_torso([self.blocks], dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        patch = self.config.patch_size
        h = patchify(x, patch)
        h = h.reshape(*h.shape[:2], -1).transpose(1, 2)
        h = self.input_layer(h) + self.pos_emb[None]
        t_emb = self.t_embedder(t).type(self.dtype)
        h, cond = h.type(self.dtype), cond.type(self.dtype)
        for block in self.blocks:
            h = block(h, t_emb, cond)
        h = nnf.layer_norm(h.type(x.dtype), h.shape[-1:])
        h = self.out_layer(h)
        side = self.resolution // patch
        h = h.transpose(1, 2).reshape(h.shape[0], h.shape[2], side, side, side)
        return unpatchify(h, patch)
