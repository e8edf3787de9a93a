"""The OpenCLIP ViT-H-14 text tower under open_clip's own parameter names, penultimate output.

MVDream conditions on OpenCLIP's text transformer stopped one block early ("penultimate") and
passed through the final LayerNorm, as SD 2.x does. The checkpoint stores that tower under
``cond_stage_model.model.*`` with open_clip's names (``token_embedding``,
``positional_embedding``, ``transformer.resblocks.N.{ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj}``,
``ln_final``, ``text_projection``, ``logit_scale``), so this module keeps them and loads that
slice as is. We build it ourselves rather than through ``open_clip.create_model`` because the
open_clip package imports torchvision at import time, which CPU-only and some CUDA installs
lack; the layout, causal mask, GELU and LayerNorm epsilon are open_clip's.
"""

from __future__ import annotations

import torch
from torch import nn

from backend.models.mvdream.config import MVDreamConfig


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_ResidualBlock(width, heads) for _ in range(layers))


class OpenCLIPTextTower(nn.Module):
    """tokens (b, 77) int64 -> context (b, 77, width) from the penultimate block + ln_final."""

    def __init__(self, config: MVDreamConfig) -> None:
        super().__init__()
        width, length = config.text_width, config.context_length
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(length, width))
        self.transformer = _Transformer(width, config.text_layers, config.text_heads)
        self.ln_final = nn.LayerNorm(width)
        # Unused by MVDream (pooled projection) but in the checkpoint: kept for strict loading.
        self.text_projection = nn.Parameter(torch.empty(width, config.text_embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))
        mask = torch.full((length, length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding.to(
            self.token_embedding.weight.dtype
        )
        mask = self.attn_mask.to(x.dtype)
        for block in self.transformer.resblocks[:-1]:  # "penultimate": skip the last block
            x = block(x, mask)
        return self.ln_final(x)
