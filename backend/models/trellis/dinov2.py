"""DINOv2 ViT-L/14 with 4 registers, built locally, reading the hub's transformers-format files.

TRELLIS conditions on ``dinov2_vitl14_reg`` loaded through torch.hub (code and weights from the
network). We read ``facebook/dinov2-with-registers-large`` instead: the same weights converted
to the transformers layout (``config.json`` + ``model.safetensors``, float32), which
``dreamcad-backend download`` fetches like any other model file. The network is the hub's ViT:
patch embedding (a stride-14 conv), ``[CLS] + patches`` plus learned position embeddings
(TRELLIS always feeds the native 518 px = 37 x 37 grid, so they are never resized), the 4
register tokens inserted after CLS, then pre-norm blocks with LayerScale:
``x + ls1 * attn(norm1(x))``, ``x + ls2 * mlp(norm2(x))`` (exact GELU, eps 1e-6).
:meth:`Dinov2WithRegisters.forward` returns the last block's output *before* the final
norm (``x_prenorm``): all ``1 + 4 + 37^2 = 1374`` tokens, which is what TRELLIS uses.

Parameter names are the file's (transformers 4.x names: ``encoder.layer.N.attention.attention
.query`` ...), so the load is strict against the very file the hub serves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as nnf

from shared_protocol.errors import ErrorCode, ProtocolError

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass(frozen=True)
class DinoConfig:
    """The ``Dinov2WithRegistersConfig`` fields the network needs."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    mlp_ratio: int = 4  # an int in the hub's config.json
    patch_size: int = 14
    image_size: int = 518
    num_register_tokens: int = 4
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @classmethod
    def from_json(cls, path: Path) -> DinoConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("use_swiglu_ffn") or raw.get("hidden_act", "gelu") != "gelu":
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"{path.name}: only the plain-MLP (GELU) DINOv2 with registers is supported",
            )
        names = cls.__dataclass_fields__
        return cls(**{key: raw[key] for key in names if key in raw})

    def to_json(self) -> dict:
        """A transformers ``config.json`` for this architecture (what testing.py writes)."""
        return {
            "architectures": ["Dinov2WithRegistersModel"],
            "model_type": "dinov2_with_registers",
            "hidden_act": "gelu",
            "use_swiglu_ffn": False,
            "layerscale_value": 1.0,
            "attention_probs_dropout_prob": 0.0,
            "hidden_dropout_prob": 0.0,
            "drop_path_rate": 0.0,
            "num_channels": 3,
            "initializer_range": 0.02,
            "apply_layernorm": True,
            "torch_dtype": "float32",
            **{key: getattr(self, key) for key in self.__dataclass_fields__},
        }


class _Linear(nn.Module):
    """A Linear under a named child, to reproduce the file's nesting (``...query.weight``)."""

    def __init__(self, name: str, features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.add_module(name, nn.Linear(features, out_features, bias=bias))


class _SelfAttention(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        width, bias = config.hidden_size, config.qkv_bias
        self.query = nn.Linear(width, width, bias=bias)
        self.key = nn.Linear(width, width, bias=bias)
        self.value = nn.Linear(width, width, bias=bias)


class _Attention(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.attention = _SelfAttention(config)
        self.output = _Linear("dense", config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        split = (batch, length, self.heads, width // self.heads)
        q, k, v = (
            layer(x).reshape(split).transpose(1, 2)
            for layer in (self.attention.query, self.attention.key, self.attention.value)
        )
        h = nnf.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)
        return self.output.dense(h)


class _LayerScale(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.lambda1 = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lambda1


class _Mlp(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        hidden = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, hidden)
        self.fc2 = nn.Linear(hidden, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nnf.gelu(self.fc1(x)))


class _Layer(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        width, eps = config.hidden_size, config.layer_norm_eps
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attention = _Attention(config)
        self.layer_scale1 = _LayerScale(width)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = _Mlp(config)
        self.layer_scale2 = _LayerScale(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.attention(self.norm1(x)))
        return x + self.layer_scale2(self.mlp(self.norm2(x)))


class _Encoder(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))


class _PatchEmbeddings(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        size = config.patch_size
        self.projection = nn.Conv2d(3, config.hidden_size, kernel_size=size, stride=size)


class _Embeddings(nn.Module):
    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.mask_token = nn.Parameter(torch.zeros(1, width))  # training only; in the file
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.grid**2 + 1, width))
        self.patch_embeddings = _PatchEmbeddings(config)

    def positions(self, rows: int, cols: int) -> torch.Tensor:
        """(1, 1 + rows * cols, width): the stored embeddings, for the stored grid only.

        TRELLIS always feeds the native grid (518 px), where the hub's ViT skips its resize;
        another size would need that bicubic resize, which nothing here asks for."""
        stored = self.position_embeddings
        if rows * cols + 1 != stored.shape[1] or rows != cols:
            raise ValueError(
                f"DINOv2 takes its native {stored.shape[1] - 1} patches, got {rows}x{cols}"
            )
        return stored

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embeddings.projection(pixels)
        rows, cols = patches.shape[-2:]
        patches = patches.flatten(2).transpose(1, 2)
        batch = patches.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), patches], dim=1)
        x = x + self.positions(rows, cols)
        registers = self.register_tokens.expand(batch, -1, -1)
        return torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)


class Dinov2WithRegisters(nn.Module):
    """``forward(pixels (B, 3, H, W), ImageNet-normalised) -> x_prenorm (B, 1 + R + P, width)``."""

    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        # The final norm is in the file but TRELLIS uses the tokens before it.
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(pixels)
        for layer in self.encoder.layer:
            x = layer(x)
        return x
