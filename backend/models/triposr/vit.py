"""The DINO ViT image encoder (TripoSR's ``image_tokenizer``), written with transformers' key names.

TripoSR's checkpoint stores a transformers-4.35 ``ViTModel`` under ``image_tokenizer.model``; the
submodule names here (``embeddings.patch_embeddings.projection``,
``encoder.layer.N.attention.attention.query``, ``layernorm_before`` ...) reproduce that layout so
the official weights load unchanged, whatever transformers version is installed (later versions
renamed these modules). Attention runs through ``scaled_dot_product_attention``. The pooler is
kept for strict loading but never evaluated: TripoSR reads only the last hidden state.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.triposr.config import VitConfig

# ImageNet statistics the tokenizer normalises with (upstream's image_mean / image_std).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class VitPatchEmbeddings(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, config.patch_size, stride=config.patch_size
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (b, c, h, w) -> patch tokens (b, h/p * w/p, hidden)."""
        return self.projection(pixels).flatten(2).transpose(1, 2)


class VitEmbeddings(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        grid = config.image_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, config.hidden_size))
        self.patch_embeddings = VitPatchEmbeddings(config)

    def interpolated_positions(self, height: int, width: int) -> torch.Tensor:
        """Position embeddings for an input of ``height`` x ``width`` pixels: (1, 1 + n, hidden).

        Matches transformers 4.35 (what TripoSR was trained with): bicubic resampling given by a
        scale factor of (cells + 0.1) / pretrained cells, which differs slightly from resampling
        to an explicit size (what later transformers versions do).
        """
        positions = self.position_embeddings
        pretrained = positions.shape[1] - 1
        rows, cols = height // self.patch_size, width // self.patch_size
        if rows * cols == pretrained and height == width:
            return positions
        side = int(math.sqrt(pretrained))
        dim = positions.shape[-1]
        grid = positions[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        grid = nnf.interpolate(
            grid.float(),
            scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
            mode="bicubic",
            align_corners=False,
        ).to(positions.dtype)
        if grid.shape[-2:] != (rows, cols):
            raise ValueError(f"position grid {tuple(grid.shape[-2:])} != {(rows, cols)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat([positions[:, :1], grid], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (b, c, h, w) -> tokens (b, 1 + n, hidden), class token first."""
        batch, _, height, width = pixels.shape
        tokens = self.patch_embeddings(pixels.to(self.patch_embeddings.projection.weight.dtype))
        cls = self.cls_token.expand(batch, -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        return tokens + self.interpolated_positions(height, width)


class VitSelfAttention(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        width = config.hidden_size
        self.query = nn.Linear(width, width, bias=config.qkv_bias)
        self.key = nn.Linear(width, width, bias=config.qkv_bias)
        self.value = nn.Linear(width, width, bias=config.qkv_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        batch, length, width = hidden.shape

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        out = nnf.scaled_dot_product_attention(
            split(self.query(hidden)), split(self.key(hidden)), split(self.value(hidden))
        )
        return out.transpose(1, 2).reshape(batch, length, width)


class VitSelfOutput(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)


class VitAttention(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.attention = VitSelfAttention(config)
        self.output = VitSelfOutput(config)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(hidden))


class VitIntermediate(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)


class VitOutput(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)


class VitLayer(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then + mlp(norm(x))."""

    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        if config.hidden_act != "gelu":
            raise ValueError(f"unsupported ViT activation {config.hidden_act!r}")
        self.attention = VitAttention(config)
        self.intermediate = VitIntermediate(config)
        self.output = VitOutput(config)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.attention(self.layernorm_before(hidden))
        mlp = nnf.gelu(self.intermediate.dense(self.layernorm_after(hidden)))
        return hidden + self.output.dense(mlp)


class VitEncoder(nn.Module):
    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(VitLayer(config) for _ in range(config.num_hidden_layers))


class VitPooler(nn.Module):
    """Present in the checkpoint (dense + tanh on the class token); TripoSR never uses it."""

    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)


class VitModel(nn.Module):
    """ViT encoder: normalised pixels (b, c, h, w) -> last hidden state (b, 1 + n, hidden)."""

    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = VitEmbeddings(config)
        self.encoder = VitEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = VitPooler(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.embeddings(pixels)
        for layer in self.encoder.layer:
            hidden = layer(hidden)
        return self.layernorm(hidden)


class DinoImageTokenizer(nn.Module):
    """TripoSR's image tokenizer: ImageNet-normalise, then the ViT's last hidden state."""

    def __init__(self, config: VitConfig) -> None:
        super().__init__()
        self.model = VitModel(config)
        self._statistics: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) as (1, 3, 1, 1) tensors on ``like``'s device and dtype, made once.

        Constants rather than buffers (upstream's are non-persistent): a model built on the
        meta device and loaded with assign=True then has nothing left to materialise. Kept per
        device because making them is a host-to-device copy, which waits for the GPU.
        """
        key = (like.device, like.dtype)
        if key not in self._statistics:
            self._statistics[key] = tuple(
                torch.tensor(values, dtype=like.dtype).reshape(1, 3, 1, 1).to(like.device)
                for values in (IMAGE_MEAN, IMAGE_STD)
            )
        mean, std = self._statistics[key]
        return mean, std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (b, 3, h, w) in [0, 1] -> tokens (b, 1 + n, hidden)."""
        mean, std = self.statistics(images)
        return self.model((images - mean) / std)
