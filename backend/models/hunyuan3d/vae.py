"""The Hunyuan3D-2 ShapeVAE decoder: shape latents -> an occupancy field queried at 3D points.

``decode_latents`` runs the latent transformer once per shape; ``OccupancyDecoder`` then answers
point queries by cross-attending from Fourier-embedded points to those latents. The key and
value projection of the latents (and their normalisation) depend only on the shape, so
:meth:`OccupancyDecoder.prepare` computes them once and every query chunk reuses them: upstream
recomputes them for each of the thousands of chunks of a volume decode. Parameter names follow
the official ``vae.``-prefixed checkpoint keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.hunyuan3d.config import VaeConfig
from backend.models.hunyuan3d.key_selection import KeySelection, selective_attention


class FourierEmbedder(nn.Module):
    """x (..., 3) -> (..., 3 * (2 * num_freqs + 1)): [x, sin(f x), cos(f x)], f = 2^i (* pi)."""

    def __init__(self, num_freqs: int, include_pi: bool) -> None:
        super().__init__()
        self.num_freqs, self.include_pi = num_freqs, include_pi
        self.register_buffer("frequencies", self._frequencies(), persistent=False)
        self.out_dim = 3 * (num_freqs * 2 + 1)

    def _frequencies(self, device: torch.device | None = None) -> Tensor:
        frequencies = 2.0 ** torch.arange(self.num_freqs, dtype=torch.float32, device=device)
        return frequencies * torch.pi if self.include_pi else frequencies

    def reset_buffers(self) -> None:
        """Recompute the constant frequencies (after a meta-device build)."""
        self.frequencies = self._frequencies(self.frequencies.device)

    def forward(self, x: Tensor) -> Tensor:
        embed = (x[..., None].contiguous() * self.frequencies).view(*x.shape[:-1], -1)
        return torch.cat((x, embed.sin(), embed.cos()), dim=-1)


class MLP(nn.Module):
    def __init__(self, width: int, expand_ratio: int = 4) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, width * expand_ratio)
        self.c_proj = nn.Linear(width * expand_ratio, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


def _mlp_in_place(mlp: MLP, norm: nn.Module, x: Tensor) -> Tensor:
    """``mlp(norm(x))`` with the same arithmetic and about half its peak memory: the GELU
    overwrites the wide hidden activations instead of allocating a second (p, 4 * width) buffer,
    and the normalised input is released once projected (the decoder's per-point transient is
    mostly these buffers)."""
    hidden = mlp.c_fc(norm(x))
    torch._C._nn.gelu_(hidden)  # the functional gelu has no in-place form
    return mlp.c_proj(hidden)


class HeadNorm(nn.Module):
    """Per-head LayerNorm of queries and keys (``qk_norm``), or nothing."""

    def __init__(self, head_dim: int, enabled: bool) -> None:
        super().__init__()
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6) if enabled else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6) if enabled else nn.Identity()


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.c_qkv = nn.Linear(width, width * 3, bias=qkv_bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = HeadNorm(width // heads, qk_norm)

    def forward(self, x: Tensor) -> Tensor:
        b, n, width = x.shape
        # The checkpoint interleaves q, k, v per head: (b, n, heads, 3 * head_dim).
        q, k, v = self.c_qkv(x).view(b, n, self.heads, -1).split(width // self.heads, dim=-1)
        q = self.attention.q_norm(q)
        k = self.attention.k_norm(k)
        q, k, v = (part.transpose(1, 2) for part in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(out.transpose(1, 2).reshape(b, n, -1))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads, qkv_bias, qk_norm)
        self.ln_1 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width)
        self.ln_2 = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(config.width, config.heads, config.qkv_bias, config.qk_norm)
            for _ in range(config.num_decoder_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x)
        return x


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.c_q = nn.Linear(width, width, bias=qkv_bias)
        self.c_kv = nn.Linear(width, width * 2, bias=qkv_bias)
        self.c_proj = nn.Linear(width, width)
        self.attention = HeadNorm(width // heads, qk_norm)


class CrossAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: int, qkv_bias: bool, qk_norm: bool):
        super().__init__()
        self.attn = CrossAttention(width, heads, qkv_bias, qk_norm)
        self.ln_1 = nn.LayerNorm(width, eps=1e-6)
        self.ln_2 = nn.LayerNorm(width, eps=1e-6)
        self.ln_3 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MLP(width, mlp_ratio)


class OccupancyDecoder(nn.Module):
    """Cross-attention occupancy decoder (``geo_decoder``): points -> logits."""

    def __init__(self, config: VaeConfig, fourier: FourierEmbedder) -> None:
        super().__init__()
        ratio = config.geo_decoder_downsample_ratio
        width = config.width // ratio
        self.heads = config.heads // ratio
        self.fourier_embedder = fourier
        self.query_proj = nn.Linear(fourier.out_dim, width)
        if ratio != 1:
            self.latents_proj = nn.Linear(width * ratio, width)
        self.ln_post_enabled = config.geo_decoder_ln_post
        qk_norm = config.qk_norm and config.geo_decoder_ln_post
        self.cross_attn_decoder = CrossAttentionBlock(
            width, self.heads, config.geo_decoder_mlp_expand_ratio, config.qkv_bias, qk_norm
        )
        if self.ln_post_enabled:
            self.ln_post = nn.LayerNorm(width)
        self.output_proj = nn.Linear(width, 1)

    def prepare(self, latents: Tensor) -> tuple[Tensor, Tensor]:
        """Per-shape keys and values (b, heads, n, d), computed once for all query chunks."""
        if hasattr(self, "latents_proj"):
            latents = self.latents_proj(latents)
        block = self.cross_attn_decoder
        b, n, _ = latents.shape
        kv = block.attn.c_kv(block.ln_2(latents)).view(b, n, self.heads, -1)
        k, v = kv.split(kv.shape[-1] // 2, dim=-1)
        k = block.attn.attention.k_norm(k)
        return k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()

    def forward(
        self, points: Tensor, keys: Tensor, values: Tensor, selection: KeySelection | None = None
    ) -> Tensor:
        """points (b, p, 3) with prepared keys/values (b, h, n, d) -> logits (b, p); exact
        attention, or FlashVDM's adaptive key selection when ``selection`` is given."""
        block = self.cross_attn_decoder
        x = self.query_proj(self.fourier_embedder(points).to(keys.dtype))
        b, p, _ = x.shape
        q = block.attn.c_q(block.ln_1(x)).view(b, p, self.heads, -1)
        q = block.attn.attention.q_norm(q).transpose(1, 2)
        if keys.shape[0] != b:  # one shape's latents shared by a batch of point groups
            keys, values = keys.expand(b, -1, -1, -1), values.expand(b, -1, -1, -1)
        out = selective_attention(q, keys, values, selection)
        del q
        x = x + block.attn.c_proj(out.transpose(1, 2).reshape(b, p, -1))
        del out
        x = x + _mlp_in_place(block.mlp, block.ln_3, x)
        if self.ln_post_enabled:
            x = self.ln_post(x)
        return self.output_proj(x)[..., 0]


class ShapeVAE(nn.Module):
    """Decoder half of the official ShapeVAE (the checkpoints carry no encoder)."""

    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.fourier_embedder = FourierEmbedder(config.num_freqs, config.include_pi)
        self.post_kl = nn.Linear(config.embed_dim, config.width)
        self.transformer = Transformer(config)
        self.geo_decoder = OccupancyDecoder(config, self.fourier_embedder)

    def decode_latents(self, latents: Tensor) -> Tensor:
        """Sampled latents (b, n, embed_dim) -> decoded latents (b, n, width)."""
        latents = (1.0 / self.config.scale_factor) * latents
        return self.transformer(self.post_kl(latents))

    @torch.no_grad()
    def prepare_queries(self, decoded: Tensor) -> tuple[Tensor, Tensor]:
        return self.geo_decoder.prepare(decoded)
