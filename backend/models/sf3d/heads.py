"""SF3D's small network parts: camera embedder, triplane tokens, upsampler, decoders.

* ``LinearCameraEmbedder``: flattened camera-to-world (16) + normalised intrinsics (9) -> the
  modulation condition of the image encoder.
* ``TriplaneTokens``: the learned triplane positional tokens the backbone refines.
* ``PixelShuffleUpsampler``: conv stack + pixel shuffle, raw triplanes -> high-res triplanes.
* ``MaterialMLP``: per-point heads on sampled triplane features (density, albedo, normal,
  vertex offset).
* ``GlobalEstimator``: strided convs + pooling over the raw triplanes -> illumination (spherical
  Gaussian amplitudes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.sf3d.config import HeadConfig

NORMALIZE_EPS = {torch.float16: 1e-4, torch.bfloat16: 1e-4, torch.float32: 1e-7,
                 torch.float64: 1e-8}


def _normalize_last(x: torch.Tensor) -> torch.Tensor:
    return nnf.normalize(x, dim=-1, eps=NORMALIZE_EPS[x.dtype])


def _lin2srgb(x: torch.Tensor) -> torch.Tensor:
    srgb = torch.pow(torch.clamp(x, min=0.0031308), 1.0 / 2.4) * 1.055 - 0.055
    return torch.where(x > 0.0031308, srgb, 12.92 * x).clamp(0.0, 1.0)


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda x: x,
    "linear": lambda x: x,
    "identity": lambda x: x,
    "exp": torch.exp,
    "trunc_exp": torch.exp,  # "truncated" only in its gradient; forward is exp
    "shifted_exp": lambda x: torch.exp(x - 1.0),
    "shifted_trunc_exp": lambda x: torch.exp(x - 1.0),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": nnf.relu,
    "softplus": nnf.softplus,
    "shifted_softplus": lambda x: nnf.softplus(x - 1.0),
    "scale_-11_01": lambda x: x * 0.5 + 0.5,
    "negative": lambda x: -x,
    "lin2srgb": _lin2srgb,
    "normalize_channel_last": _normalize_last,
}


def activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The output activation a config names (None = identity)."""
    if name is None:
        return ACTIVATIONS["none"]
    try:
        return ACTIVATIONS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown output activation {name!r}") from None


def _act(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown hidden activation {name!r}")


class LinearCameraEmbedder(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)

    def forward(self, c2w: torch.Tensor, intrinsic_normed: torch.Tensor) -> torch.Tensor:
        """(B, Nv, 4, 4), (B, Nv, 3, 3) -> (B, Nv, out_channels)."""
        flat = torch.cat([c2w.flatten(2), intrinsic_normed.flatten(2)], dim=-1)
        return self.linear(flat)


class TriplaneTokens(nn.Module):
    """Learned (3, C, P, P) planes, flattened to tokens (B, C, 3 * P * P) and back."""

    def __init__(self, plane_size: int, channels: int) -> None:
        super().__init__()
        self.plane_size = plane_size
        self.embeddings = nn.Parameter(
            torch.randn(3, channels, plane_size, plane_size) / channels**0.5
        )

    def forward(self, batch: int) -> torch.Tensor:
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(1, self.embeddings.shape[1], -1)
        return tokens.expand(batch, -1, -1)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, 3 * P * P) -> (B, 3, C, P, P)."""
        batch, channels, _ = tokens.shape
        size = self.plane_size
        return tokens.reshape(batch, channels, 3, size, size).permute(0, 2, 1, 3, 4)


class PixelShuffleUpsampler(nn.Module):
    """Per plane: ``conv_layers`` convs (ReLU between), the last to out * scale^2, then shuffle."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, layers: int,
                 kernel: int) -> None:
        super().__init__()
        modules: list[nn.Module] = []
        for i in range(layers):
            last = i == layers - 1
            modules.append(
                nn.Conv2d(in_channels, out_channels * scale**2 if last else in_channels, kernel,
                          padding=(kernel - 1) // 2)
            )
            if not last:
                modules.append(nn.ReLU())
        modules.append(nn.PixelShuffle(scale))
        self.upsample = nn.Sequential(*modules)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """(B, 3, Ci, P, P) -> (B, 3, Co, P * scale, P * scale)."""
        batch = planes.shape[0]
        out = self.upsample(planes.flatten(0, 1))
        return out.reshape(batch, 3, *out.shape[1:])


def _head_mlp(in_width: int, width: int, hidden_layers: int, out: int, act: str) -> nn.Sequential:
    modules: list[nn.Module] = []
    for i in range(hidden_layers):
        modules += [nn.Linear(in_width if i == 0 else width, width), _act(act)]
    modules.append(nn.Linear(width, out))
    return nn.Sequential(*modules)


class MaterialMLP(nn.Module):
    """One MLP per head on triplane features (N, in) -> {name: (N, out)} after activation."""

    def __init__(self, in_channels: int, neurons: int, act: str,
                 heads: tuple[HeadConfig, ...]) -> None:
        super().__init__()
        self.specs = heads
        self.heads = nn.ModuleDict(
            {h.name: _head_mlp(in_channels, neurons, h.n_hidden_layers, h.out_channels, act)
             for h in heads}
        )

    def forward(self, features: torch.Tensor, include: tuple[str, ...] | None = None,
                exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        out = {}
        for head in self.specs:
            if (include is not None and head.name not in include) or head.name in exclude:
                continue
            raw = self.heads[head.name](features) + head.output_bias
            out[head.name] = activation(head.output_activation)(raw)
        return out


class GlobalEstimator(nn.Module):
    """Raw triplanes (B, 3, C, P, P) -> per-asset values (illumination amplitudes)."""

    def __init__(self, triplane_features: int, layers: int, hidden: int, act: str, pool: str,
                 heads: tuple[HeadConfig, ...]) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        width = triplane_features * 3
        for _ in range(layers):
            convs += [nn.Conv2d(width, hidden, kernel_size=3, padding=0, stride=2), _act(act)]
            width = hidden
        self.layers = nn.Sequential(*convs)
        self.pool = pool
        self.specs = heads
        self.heads = nn.ModuleDict(
            {h.name: _head_mlp(hidden, hidden, h.n_hidden_layers, h.out_channels, act)
             for h in heads}
        )

    def forward(self, planes: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.layers(planes.reshape(planes.shape[0], -1, *planes.shape[-2:]))
        x = x.amax(dim=(-2, -1)) if self.pool == "max" else x.mean(dim=(-2, -1))
        out = {}
        for head in self.specs:
            value = activation(head.output_activation)(self.heads[head.name](x) + head.output_bias)
            out[head.name] = value.reshape(*head.shape) if head.shape else value
        return out
