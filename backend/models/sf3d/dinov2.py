"""DINOv2 image encoder with camera modulation of its layer norms (SF3D's image tokenizer).

A ViT as in Hugging Face's ``Dinov2Model`` (patch embedding, class token, learned position
embeddings interpolated bicubically to the input grid, pre-norm blocks with layer scale), where
each block's two layer norms are followed by an adaptive scale/shift computed from the camera
embedding (``norm1_modulation`` / ``norm2_modulation``). Attribute names follow the official
checkpoint: ``image_tokenizer.model.encoder.layer.N.attention.attention.query`` and so on.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.sf3d.config import DinoConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Modulation(nn.Module):
    """x * (1 + scale) + shift, with (scale, shift) = Linear(SiLU(condition)).

    ``linear1`` is an identity in SF3D (single-layer modulation), so it holds no weights.
    """

    def __init__(self, embedding_dim: int, condition_dim: int) -> None:
        super().__init__()
        self.linear2 = nn.Linear(condition_dim, embedding_dim * 2)
        # Zero init makes an untrained modulation the identity, as upstream does.
        nn.init.zeros_(self.linear2.weight)
        nn.init.zeros_(self.linear2.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear2(nnf.silu(condition)).chunk(2, dim=1)
        return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbeddings(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.projection = nn.Conv2d(
            3, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection(pixels).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    """Class token + patch tokens + position embeddings (resized when the grid differs)."""

    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.config = config
        grid = config.image_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        # A persistent buffer in the official checkpoint, unused at inference.
        self.register_buffer("mask_token", torch.zeros(1, config.hidden_size))
        self.patch_embeddings = PatchEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.zeros(1, grid * grid + 1, config.hidden_size))
        self._resized: tuple[tuple, torch.Tensor] | None = None

    def interpolated_positions(self, num_patches: int, height: int, width: int) -> torch.Tensor:
        """Position embeddings for a (height, width) pixel input: (1, 1 + patches, hidden).

        The resize is kept until the weights or the input size change: torch's bicubic kernel
        loops over the 1024 channels per pixel and took 9 ms of a 55 ms bf16 encode on an H100.
        """
        num_positions = self.position_embeddings.shape[1] - 1
        if num_patches == num_positions and height == width:
            return self.position_embeddings
        weights = self.position_embeddings
        key = (height, width, weights.data_ptr(), weights._version, weights.device, weights.dtype)
        if self._resized is None or self._resized[0] != key or torch.is_grad_enabled():
            self._resized = (key, self._resize_positions(height, width))
        return self._resized[1]

    def _resize_positions(self, height: int, width: int) -> torch.Tensor:
        num_positions = self.position_embeddings.shape[1] - 1
        side = int(math.sqrt(num_positions))
        patch_pos = self.position_embeddings[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        # DINOv2 resizes by a scale factor with +0.1 to dodge float truncation (same as the
        # checkpoint was trained/evaluated with), so we compute the identical sampling grid.
        rows = height // self.config.patch_size + 0.1
        cols = width // self.config.patch_size + 0.1
        patch_pos = nnf.interpolate(
            patch_pos.float(),
            scale_factor=(rows / side, cols / side),
            mode="bicubic",
            align_corners=False,
        ).to(patch_pos.dtype)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, patch_pos.shape[1])
        return torch.cat([self.position_embeddings[:, :1], patch_pos], dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embeddings(pixels)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        positions = self.interpolated_positions(tokens.shape[1] - 1, *pixels.shape[-2:])
        return tokens + positions


class SelfAttentionWeights(nn.Module):
    """Query/key/value projections (``attention.attention`` in the checkpoint)."""

    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.heads = config.num_attention_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        shape = (batch, tokens, self.heads, width // self.heads)
        q, k, v = (proj(x).reshape(shape).transpose(1, 2) for proj in (self.query, self.key,
                                                                         self.value))
        out = nnf.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(batch, tokens, width)


class AttentionOutput(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)


class Attention(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.attention = SelfAttentionWeights(config)
        self.output = AttentionOutput(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class LayerScale(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class Mlp(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        hidden = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, hidden)
        self.fc2 = nn.Linear(hidden, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nnf.gelu(self.fc1(x)))


class Layer(nn.Module):
    """Pre-norm block; both norms are modulated by the camera condition."""

    def __init__(self, config: DinoConfig, condition_dim: int) -> None:
        super().__init__()
        width = config.hidden_size
        self.norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm1_modulation = Modulation(width, condition_dim)
        self.attention = Attention(config)
        self.layer_scale1 = LayerScale(width)
        self.norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.norm2_modulation = Modulation(width, condition_dim)
        self.mlp = Mlp(config)
        self.layer_scale2 = LayerScale(width)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1_modulation(self.norm1(x), condition)))
        return x + self.layer_scale2(self.mlp(self.norm2_modulation(self.norm2(x), condition)))


class Encoder(nn.Module):
    def __init__(self, config: DinoConfig, condition_dim: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(
            Layer(config, condition_dim) for _ in range(config.num_hidden_layers)
        )


class Dinov2(nn.Module):
    """The ViT; ``forward`` returns the final normed tokens (batch, 1 + patches, hidden)."""

    def __init__(self, config: DinoConfig, condition_dim: int) -> None:
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config, condition_dim)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixels: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(pixels)
        for layer in self.encoder.layer:
            x = layer(x, condition)
        return self.layernorm(x)


class ImageTokenizer(nn.Module):
    """ImageNet-normalises the views and encodes them: (B, Nv, 3, H, W) -> (B, Nv, C, tokens).

    Upstream also lists the modulations in a flat ``modulations`` list that shares these
    modules; the official file stores each tensor once, under the per-layer names used here.
    """

    def __init__(self, config: DinoConfig, condition_dim: int) -> None:
        super().__init__()
        self.model = Dinov2(config, condition_dim)
        self.register_buffer(
            "image_mean", torch.tensor(IMAGENET_MEAN).reshape(1, 1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "image_std", torch.tensor(IMAGENET_STD).reshape(1, 1, 3, 1, 1), persistent=False
        )

    def forward(self, images: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        batch, views = images.shape[:2]
        images = (images - self.image_mean) / self.image_std
        tokens = self.model(images.flatten(0, 1), condition.flatten(0, 1))
        return tokens.permute(0, 2, 1).reshape(batch, views, tokens.shape[2], tokens.shape[1])
