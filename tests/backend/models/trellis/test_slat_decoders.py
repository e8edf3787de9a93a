"""SLat decoders against from-the-formulas references (swin windows, dense convs, heads)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import SparseTensor
from backend.models.trellis.slat_decoders import (
    MESH_FEATURE_LAYOUT,
    SLatGaussianDecoder,
    SLatMeshDecoder,
    SLatRadianceFieldDecoder,
    gaussian_offset_perturbation,
)
from tests.backend.models.sparse.reference import (
    DEVICES,
    random_coords,
    reference_subdivide_block,
)

GAUSSIANS = {
    "lr": {"_xyz": 1.0, "_features_dc": 1.0, "_opacity": 1.0, "_scaling": 1.0, "_rotation": 0.1},
    "perturb_offset": True,
    "voxel_size": 1.5,
    "num_gaussians": 4,
    "2d_filter_kernel_size": 0.1,
    "3d_filter_kernel_size": 9e-4,
    "scaling_bias": 4e-3,
    "opacity_bias": 0.1,
    "scaling_activation": "softplus",
}
TRUNK = dict(
    resolution=8,
    model_channels=48,
    latent_channels=3,
    num_blocks=3,
    num_heads=2,
    mlp_ratio=2,
    attn_mode="swin",
    window_size=4,
)


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model.eval()


def ape(xyz: Tensor, channels: int) -> Tensor:
    fd = channels // 3 // 2
    freqs = 1.0 / 10000 ** (torch.arange(fd, dtype=torch.float64) / fd)
    parts = []
    for axis in range(3):
        angle = xyz[:, axis].double()[:, None] * freqs[None]
        parts += [torch.sin(angle), torch.cos(angle)]
    out = torch.cat(parts, dim=1)
    return F.pad(out, (0, channels - out.shape[1]))


def window_attention(coords: Tensor, q: Tensor, k: Tensor, v: Tensor, size: int, shift: int):
    windows: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (b, x, y, z) in enumerate(coords.tolist()):
        windows[(b, (x + shift) // size, (y + shift) // size, (z + shift) // size)].append(i)
    out = torch.empty_like(v)
    for rows in windows.values():
        scores = torch.einsum("qhd,khd->hqk", q[rows], k[rows]) / math.sqrt(q.shape[-1])
        out[rows] = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v[rows])
    return out


def reference_trunk(model: nn.Module, coords: Tensor, feats: Tensor, args: dict) -> Tensor:
    """The swin trunk for JSON ``args``, from the formulas (float64)."""
    p = {k: v.double() for k, v in model.state_dict().items()}
    heads, channels, size = args["num_heads"], args["model_channels"], args["window_size"]

    def linear(h: Tensor, name: str) -> Tensor:
        return F.linear(h, p[f"{name}.weight"], p[f"{name}.bias"])

    h = linear(feats.double(), "input_layer") + ape(coords[:, 1:], channels)
    for i in range(args["num_blocks"]):
        name = f"blocks.{i}"
        normed = F.layer_norm(h, h.shape[-1:], eps=1e-6)
        q, k, v = linear(normed, f"{name}.attn.to_qkv").unflatten(-1, (3, heads, -1)).unbind(1)
        shift = size // 2 * (i % 2)  # swin: odd blocks shifted by half a window
        h = h + linear(
            window_attention(coords, q, k, v, size, shift).flatten(1), f"{name}.attn.to_out"
        )
        normed = F.layer_norm(h, h.shape[-1:], eps=1e-6)
        hidden = F.gelu(linear(normed, f"{name}.mlp.mlp.0"), approximate="tanh")
        h = h + linear(hidden, f"{name}.mlp.mlp.2")
    return h


def latent(seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    coords = random_coords([60, 35], 8, generator)
    return coords, torch.randn(len(coords), 3, generator=generator)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("cls", "representation"),
    [(SLatGaussianDecoder, GAUSSIANS), (SLatRadianceFieldDecoder, {"rank": 2, "dim": 3})],
)
def test_normed_heads_match_reference(
    device: str, cls: type[nn.Module], representation: dict[str, Any]
) -> None:
    model = randomised(cls(**TRUNK, representation_config=representation))
    coords, feats = latent(1)
    out = model.to(device)(SparseTensor(feats, coords).to(device))
    with torch.no_grad():
        h = reference_trunk(model.cpu(), coords, feats, TRUNK)
        h = F.layer_norm(h, h.shape[-1:])
        expected = F.linear(h, model.out_layer.weight.double(), model.out_layer.bias.double())
    assert out.coords.cpu().equal(coords) and out.feats.shape == (len(coords), model.out_channels)
    torch.testing.assert_close(out.feats.detach().cpu().double(), expected, rtol=1e-4, atol=1e-4)


def test_mesh_decoder_matches_reference() -> None:
    args = dict(TRUNK, model_channels=256, num_heads=4, num_blocks=2, resolution=4)
    model = randomised(SLatMeshDecoder(**args, representation_config={"use_color": True}))
    generator = torch.Generator().manual_seed(2)
    coords = random_coords([12, 7], 4, generator)
    feats = torch.randn(len(coords), 3, generator=generator)
    out = model(SparseTensor(feats, coords))
    with torch.no_grad():
        h = reference_trunk(model, coords, feats, args)
        model = model.double()
        fine, h = reference_subdivide_block(model.upsample[0], coords, h, 4)
        fine, h = reference_subdivide_block(model.upsample[1], fine, h, 8)
        expected = F.linear(h, model.out_layer.weight, model.out_layer.bias)
    assert out.coords.tolist() == fine.tolist()
    assert out.feats.shape == (64 * len(coords), 101) == (64 * len(coords), model.out_channels)
    # Wide random layers give features in the thousands; float32 keeps ~1e-6 of that.
    error = (out.feats.detach().double() - expected).abs().max()
    assert error < 1e-5 * expected.abs().max()
    assert MESH_FEATURE_LAYOUT["color"][1] == 101 and model.out_resolution == 16


def radical_inverse_by_digits(base: int, index: int) -> float:
    digits = []
    while index:
        digits.append(index % base)
        index //= base
    return sum(d / base ** (k + 1) for k, d in enumerate(digits))


def test_offset_perturbation_is_atanh_of_hammersley_points() -> None:
    count, voxel = 32, 1.5
    points = [
        [i / count, radical_inverse_by_digits(2, i), radical_inverse_by_digits(3, i)]
        for i in range(count)
    ]
    expected = torch.atanh((torch.tensor(points, dtype=torch.float32) * 2 - 1) / voxel)
    got = gaussian_offset_perturbation(count, voxel)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-7)
    assert got[0].tolist() == pytest.approx([math.atanh(-1 / 1.5)] * 3)
    model = SLatGaussianDecoder(**TRUNK, representation_config=GAUSSIANS)
    assert model.state_dict()["offset_perturbation"].equal(gaussian_offset_perturbation(4, 1.5))


def test_gaussian_parameters_follow_upstreams_layout() -> None:
    model = SLatGaussianDecoder(**TRUNK, representation_config=GAUSSIANS)
    coords = torch.tensor([[0, 1, 2, 3], [1, 7, 0, 0], [1, 0, 0, 1]], dtype=torch.int32)
    g = GAUSSIANS["num_gaussians"]
    raw = torch.randn(3, 14 * g, generator=torch.Generator().manual_seed(3))
    first, second = model.gaussian_parameters(SparseTensor(raw, coords))
    # channels: xyz (g*3) | features_dc (g*3) | scaling (g*3) | rotation (g*4) | opacity (g)
    xyz, dc, scaling, rotation, opacity = raw.split([3 * g, 3 * g, 3 * g, 4 * g, g], dim=1)
    perturbed = xyz.reshape(3, g, 3) + model.offset_perturbation
    centre = (coords[:, 1:].float() + 0.5) / 8
    positions = centre[:, None] + torch.tanh(perturbed) / 8 * 0.5 * 1.5
    torch.testing.assert_close(first.xyz, positions[0])
    torch.testing.assert_close(second.xyz, positions[1:].reshape(-1, 3))
    torch.testing.assert_close(second.features_dc, dc[1:].reshape(-1, 1, 3))
    torch.testing.assert_close(second.scaling, scaling[1:].reshape(-1, 3))
    torch.testing.assert_close(second.rotation, rotation[1:].reshape(-1, 4) * 0.1)
    torch.testing.assert_close(second.opacity, opacity[1:].reshape(-1, 1))


def test_radiance_field_parameters_follow_upstreams_layout() -> None:
    model = SLatRadianceFieldDecoder(**TRUNK, representation_config={"rank": 2, "dim": 3})
    coords = torch.tensor([[0, 1, 2, 3], [0, 7, 0, 0]], dtype=torch.int32)
    raw = torch.randn(2, 2 * 3 * 3 + 2 + 6, generator=torch.Generator().manual_seed(4))
    (field,) = model.radiance_field_parameters(SparseTensor(raw, coords))
    trivec, density, dc = raw.split([18, 2, 6], dim=1)
    torch.testing.assert_close(field.trivec, trivec.reshape(2, 2, 3, 3) + 1)
    torch.testing.assert_close(field.density, density)
    torch.testing.assert_close(field.features_dc, dc.reshape(2, 2, 1, 3))
    torch.testing.assert_close(field.position, (coords[:, 1:].float() + 0.5) / 8)
    assert field.depth == 3
