"""The Hunyuan3D-2 flow-matching DiT: shape latents denoised under DINOv2 image tokens.

A FLUX-style transformer without positional encodings: ``depth`` double-stream blocks (latent
and condition tokens keep separate weights but attend jointly) followed by
``depth_single_blocks`` single-stream blocks over the concatenated sequence, all modulated by
the timestep embedding (plus a guidance embedding for the guidance-distilled fast and turbo
variants). Parameter names follow the official checkpoints (``double_blocks.0.img_mod.lin``
...), so a ``model.``-prefixed state dict loads as is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.hunyuan3d.config import DitConfig


def timestep_embedding(t: Tensor, dim: int, max_period: float, scale: float = 1000.0) -> Tensor:
    """Sinusoidal embedding of ``scale * t``, t (b,) in [0, 1] -> (b, dim), cosines first.

    The released model calls this with its ``time_factor`` (1000) in the *max_period* slot,
    so it was trained with max_period 1000, not the usual 10000: the DiT passes it that way.
    """
    t = scale * t
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if torch.is_floating_point(t):
        embedding = embedding.to(t)
    return embedding


def split_heads(x: Tensor, parts: int, heads: int) -> tuple[Tensor, ...]:
    """(b, l, parts*heads*d) -> ``parts`` tensors of (b, heads, l, d)."""
    b, length, _ = x.shape
    x = x.view(b, length, parts, heads, -1).permute(2, 0, 3, 1, 4)
    return tuple(x.unbind(0))


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Scaled dot-product attention over (b, h, l, d) -> (b, l, h*d)."""
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden_dim)
        self.out_layer = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    """RMS norm computed in float32 (as trained), cast back before the learned scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + 1e-6)
        return x.to(dtype) * self.scale


class QKNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)

    def forward(self, q: Tensor, k: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(like), self.key_norm(k).to(like)


class SelfAttention(nn.Module):
    """Holds the projections of one stream; the joint attention runs in the block."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.norm = QKNorm(dim // num_heads)
        self.proj = nn.Linear(dim, dim)


class Modulation(nn.Module):
    """adaLN: ``vec`` -> (shift, scale, gate) once or twice, each (b, 1, dim)."""

    def __init__(self, dim: int, double: bool) -> None:
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec: Tensor) -> tuple[Tensor, ...]:
        return self.lin(F.silu(vec))[:, None, :].chunk(self.multiplier, dim=-1)


def _mlp(hidden: int, ratio: float) -> nn.Sequential:
    inner = int(hidden * ratio)
    return nn.Sequential(
        nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden)
    )


class DoubleStreamBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = heads
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", Modulation(hidden, double=True))
            setattr(self, f"{stream}_attn", SelfAttention(hidden, heads, qkv_bias))
            setattr(self, f"{stream}_mlp", _mlp(hidden, mlp_ratio))

    def _qkv(self, stream: str, x: Tensor, shift: Tensor, scale: Tensor) -> tuple[Tensor, ...]:
        attn: SelfAttention = getattr(self, f"{stream}_attn")
        modulated = (1 + scale) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + shift
        q, k, v = split_heads(attn.qkv(modulated), 3, self.num_heads)
        q, k = attn.norm(q, k, v)
        return q, k, v

    def forward(self, img: Tensor, txt: Tensor, vec: Tensor) -> tuple[Tensor, Tensor]:
        img_mod = self.img_mod(vec)
        txt_mod = self.txt_mod(vec)
        img_q, img_k, img_v = self._qkv("img", img, img_mod[0], img_mod[1])
        txt_q, txt_k, txt_v = self._qkv("txt", txt, txt_mod[0], txt_mod[1])
        joint = attention(
            torch.cat((txt_q, img_q), 2), torch.cat((txt_k, img_k), 2), torch.cat((txt_v, img_v), 2)
        )
        txt_out, img_out = joint[:, : txt.shape[1]], joint[:, txt.shape[1] :]
        img = self._residual("img", img, img_out, img_mod)
        txt = self._residual("txt", txt, txt_out, txt_mod)
        return img, txt

    def _residual(
        self, stream: str, x: Tensor, attended: Tensor, mod: tuple[Tensor, ...]
    ) -> Tensor:
        attn: SelfAttention = getattr(self, f"{stream}_attn")
        mlp: nn.Sequential = getattr(self, f"{stream}_mlp")
        x = x + mod[2] * attn.proj(attended)
        normed = F.layer_norm(x, x.shape[-1:], eps=1e-6)
        return x + mod[5] * mlp((1 + mod[4]) * normed + mod[3])


class SingleStreamBlock(nn.Module):
    """Parallel attention + MLP over the joint sequence (one fused input projection)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.hidden_size = hidden
        self.num_heads = heads
        self.mlp_hidden_dim = int(hidden * mlp_ratio)
        self.linear1 = nn.Linear(hidden, hidden * 3 + self.mlp_hidden_dim)
        self.linear2 = nn.Linear(hidden + self.mlp_hidden_dim, hidden)
        self.norm = QKNorm(hidden // heads)
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale, gate = self.modulation(vec)
        x_mod = (1 + scale) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + shift
        qkv, mlp = torch.split(
            self.linear1(x_mod), [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1
        )
        q, k, v = split_heads(qkv, 3, self.num_heads)
        q, k = self.norm(q, k, v)
        attended = attention(q, k, v)
        out = self.linear2(torch.cat((attended, F.gelu(mlp, approximate="tanh")), 2))
        return x + gate * out


class LastLayer(nn.Module):
    def __init__(self, hidden: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec).chunk(2, dim=1)
        x = (1 + scale[:, None, :]) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + shift[:, None, :]
        return self.linear(x)


class Hunyuan3DDiT(nn.Module):
    """Velocity predictor: latents (b, n, c), t (b,), cond (b, m, context) -> (b, n, c)."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if sum(config.axes_dim) != config.hidden_size // config.num_heads:
            raise ValueError("axes_dim must sum to the head size")
        self.config = config
        hidden = config.hidden_size
        self.latent_in = nn.Linear(config.in_channels, hidden)
        self.time_in = MLPEmbedder(256, hidden)
        self.cond_in = nn.Linear(config.context_in_dim, hidden)
        if config.guidance_embed:
            self.guidance_in = MLPEmbedder(256, hidden)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(hidden, config.num_heads, config.mlp_ratio, config.qkv_bias)
            for _ in range(config.depth)
        )
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(hidden, config.num_heads, config.mlp_ratio)
            for _ in range(config.depth_single_blocks)
        )
        self.final_layer = LastLayer(hidden, config.in_channels)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, guidance: Tensor | None = None) -> Tensor:
        latent = self.latent_in(x)
        factor = self.config.time_factor
        vec = self.time_in(timestep_embedding(t, 256, max_period=factor).to(latent.dtype))
        if self.config.guidance_embed:
            if guidance is None:
                raise ValueError("this guidance-distilled model needs a guidance value")
            vec = vec + self.guidance_in(timestep_embedding(guidance, 256, max_period=factor))
        cond = self.cond_in(cond)
        for block in self.double_blocks:
            latent, cond = block(latent, cond, vec)
        joint = torch.cat((cond, latent), 1)
        for block in self.single_blocks:
            joint = block(joint, vec)
        return self.final_layer(joint[:, cond.shape[1] :], vec)
