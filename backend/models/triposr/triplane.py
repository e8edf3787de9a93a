"""Triplane parts of TripoSR: learned plane tokens, the upsampler, the NeRF MLP and the field query.

``tokenizer.embeddings`` (3, c, s, s) are the learned starting tokens the backbone refines;
``post_processor.upsample`` doubles each plane's resolution (transposed conv, kernel 2 stride 2);
``decoder.layers`` is an MLP from the three sampled plane features to (density, 3 colour
features). :func:`query_field` is upstream's field query: points in [-radius, radius]^3 are
bilinearly sampled on the xy, xz and yz planes, concatenated, decoded, then activated
(density: exp(d + bias); colour: sigmoid). Point batches are processed in chunks so memory
stays bounded at any marching-cubes resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.triposr.config import TripoSRConfig


class TriplaneTokenizer(nn.Module):
    """The learned tokens: (3, channels, size, size) flattened to (b, channels, 3 * size^2)."""

    def __init__(self, config: TripoSRConfig) -> None:
        super().__init__()
        self.plane_size = config.plane_size
        self.channels = config.token_channels
        self.embeddings = nn.Parameter(
            torch.randn(3, config.token_channels, config.plane_size, config.plane_size)
            / math.sqrt(config.token_channels)
        )

    def forward(self, batch_size: int) -> torch.Tensor:
        tokens = self.embeddings.permute(1, 0, 2, 3).reshape(self.channels, -1)
        return tokens.unsqueeze(0).expand(batch_size, -1, -1)

    def detokenize(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (b, channels, 3 * size^2) -> planes (b, 3, channels, size, size)."""
        batch = tokens.shape[0]
        size = self.plane_size
        planes = tokens.reshape(batch, self.channels, 3, size, size)
        return planes.permute(0, 2, 1, 3, 4)


class TriplaneUpsampler(nn.Module):
    """planes (b, 3, c_in, s, s) -> (b, 3, c_out, 2s, 2s)."""

    def __init__(self, config: TripoSRConfig) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(
            config.token_channels, config.triplane_channels, kernel_size=2, stride=2
        )

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        batch = planes.shape[0]
        up = self.upsample(planes.flatten(0, 1))
        return up.reshape(batch, 3, *up.shape[1:])


class NerfMlp(nn.Module):
    """features (k, in) -> raw (k, 4): density logit, then 3 colour logits."""

    def __init__(self, config: TripoSRConfig) -> None:
        super().__init__()
        # In place, as upstream: each hidden activation overwrites its linear's fresh output, so
        # a chunk allocates (and, on the CPU, page-faults in) one buffer per layer, not two.
        activation: type[nn.Module] = nn.SiLU if config.decoder_activation == "silu" else nn.ReLU
        width, bias = config.decoder_neurons, config.decoder_bias
        layers: list[nn.Module] = [nn.Linear(config.decoder_in_channels, width, bias=bias)]
        for _ in range(config.decoder_hidden_layers - 1):
            layers += [activation(inplace=True), nn.Linear(width, width, bias=bias)]
        layers += [activation(inplace=True), nn.Linear(width, 4, bias=bias)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


# In-place activations for the density written straight into the grid's output buffer
# (torch's in-place kernels give the same values as the out-of-place ones).
_IN_PLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda x: x,
    "exp": torch.exp_,
    "trunc_exp": torch.exp_,
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    name = (name or "none").lower()
    table: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "none": lambda x: x,
        "exp": torch.exp,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softplus": nnf.softplus,
        "relu": nnf.relu,
    }
    if name == "trunc_exp":
        # Upstream's default name; inference-equivalent to exp (the truncation is a gradient clamp).
        return torch.exp
    if name not in table:
        raise ValueError(f"unknown activation {name!r}")
    return table[name]


def to_unit(points: torch.Tensor, radius: float) -> torch.Tensor:
    """[-radius, radius] -> grid_sample's [-1, 1], with upstream's exact arithmetic."""
    return (points + radius) / (2.0 * radius) * 2.0 - 1.0


def sample_planes(planes: torch.Tensor, unit: torch.Tensor, reduction: str) -> torch.Tensor:
    """Bilinear triplane features.

    planes : (3, c, h, w) for the xy, xz, yz planes
    unit : (k, 3) in [-1, 1]
    returns (k, 3c) (``concat``, plane-major) or (k, c) (``mean``)
    """
    # Strided slices, not list indexing: a list index is a host tensor copied to the device and
    # a gather kernel per plane; slices are views, so this is one copy kernel in all.
    coords = torch.stack([unit[:, 0:2], unit[:, 0::2], unit[:, 1:3]], dim=0)
    sampled = nnf.grid_sample(
        planes, coords.unsqueeze(1).to(planes.dtype), mode="bilinear", align_corners=False
    )  # (3, c, 1, k)
    sampled = sampled.squeeze(2)
    if reduction == "mean":
        return sampled.mean(dim=0).transpose(0, 1)
    return sampled.permute(2, 0, 1).reshape(unit.shape[0], -1)


def decode_unit_points(
    config: TripoSRConfig, decoder: NerfMlp, planes: torch.Tensor, unit: torch.Tensor
) -> torch.Tensor:
    """Raw decoder output (k, 4) in the planes' dtype at points already in [-1, 1]."""
    return decoder(sample_planes(planes, unit, config.feature_reduction))


def density_into(config: TripoSRConfig, raw: torch.Tensor, out: torch.Tensor) -> None:
    """Write the activated density of ``raw`` (k, 4) into ``out`` (k,) float32 in place.

    Same values as ``density_act`` of :func:`query_field` (bias added, then the activation),
    with no intermediate tensors: one add into ``out`` and one in-place activation.
    """
    torch.add(raw[:, 0].float(), config.density_bias, out=out)
    name = (config.density_activation or "none").lower()
    if name in _IN_PLACE:
        _IN_PLACE[name](out)
    else:
        out.copy_(_activation(name)(out))


def query_field(
    config: TripoSRConfig,
    decoder: NerfMlp,
    planes: torch.Tensor,
    points: torch.Tensor,
    chunk_size: int = 0,
    want_color: bool = True,
    between_chunks: Callable[[], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Density and colour of one scene at ``points``.

    planes : (3, c, h, w) one scene's triplanes
    points : (k, 3) in [-radius, radius]^3, on the planes' device
    chunk_size : points per decoder call (0: all at once)
    returns {"density": (k, 1) raw, "density_act": (k, 1), "color": (k, 3) in [0, 1]}
    """
    unit = to_unit(points, config.radius)
    density_act = _activation(config.density_activation)
    color_act = _activation(config.color_activation)
    raw_density, raw_color = [], []
    step = chunk_size if chunk_size > 0 else max(1, unit.shape[0])
    for start in range(0, unit.shape[0], step):
        out = decode_unit_points(config, decoder, planes, unit[start : start + step])
        raw_density.append(out[:, :1].float())
        if want_color:
            raw_color.append(out[:, 1:4].float())
        if between_chunks is not None:
            between_chunks()
    empty = points.new_zeros((0, 1), dtype=torch.float32)
    density = torch.cat(raw_density) if raw_density else empty
    result = {"density": density, "density_act": density_act(density + config.density_bias)}
    if want_color:
        color = torch.cat(raw_color) if raw_color else points.new_zeros((0, 3))
        result["color"] = color_act(color)
    return result
