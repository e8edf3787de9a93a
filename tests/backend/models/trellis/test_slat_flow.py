"""SLatFlowModel against a from-the-formulas reference forward (dense convs, naive attention)."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from backend.models.sparse import SparseTensor
from backend.models.sparse import conv as conv_module
from backend.models.trellis.slat_flow import SLatFlowModel
from tests.backend.models.sparse.reference import DEVICES, dense_conv_reference, random_coords

TINY = dict(
    resolution=8,
    in_channels=4,
    model_channels=32,
    cond_channels=12,
    out_channels=4,
    num_blocks=2,
    num_heads=2,
    mlp_ratio=2,
    patch_size=2,
    num_io_res_blocks=2,
    io_block_channels=[8],
    pe_mode="ape",
    qk_rms_norm=True,
)


def tiny_model(seed: int = 0, **overrides: object) -> SLatFlowModel:
    torch.manual_seed(seed)
    model = SLatFlowModel(**{**TINY, **overrides})
    with torch.no_grad():  # no zero-initialised layers: every path must carry signal
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model.eval()


# ---- the reference: upstream's forward restated from the research notes, with dense parts ----


def layer_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], weight, bias, 1e-6)


def t_embedding(t: Tensor, p: dict[str, Tensor]) -> Tensor:
    freqs = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float64) / 128)
    args = t.double()[:, None] * freqs[None]
    sinusoid = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    h = F.silu(F.linear(sinusoid, p["t_embedder.mlp.0.weight"], p["t_embedder.mlp.0.bias"]))
    return F.linear(h, p["t_embedder.mlp.2.weight"], p["t_embedder.mlp.2.bias"])


def ape(xyz: Tensor, channels: int) -> Tensor:
    fd = channels // 3 // 2
    freqs = 1.0 / 10000 ** (torch.arange(fd, dtype=torch.float64) / fd)
    parts = []
    for axis in range(3):
        angle = xyz[:, axis].double()[:, None] * freqs[None]
        parts += [torch.sin(angle), torch.cos(angle)]
    out = torch.cat(parts, dim=1)
    return F.pad(out, (0, channels - out.shape[1]))


def downsample(coords: Tensor, feats: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (b, x, y, z) in enumerate(coords.tolist()):
        groups[(b, x // 2, y // 2, z // 2)].append(i)
    keys = sorted(groups)
    pooled = torch.stack([feats[groups[k]].sum(0) / (len(groups[k]) + 1) for k in keys])
    parent_of = {i: j for j, k in enumerate(keys) for i in groups[k]}
    return torch.tensor(keys, dtype=torch.int32), pooled, [parent_of[i] for i in range(len(coords))]


def res_block(p: dict, name: str, coords: Tensor, x: Tensor, emb: Tensor, res: int) -> Tensor:
    def conv(h: Tensor, layer: str) -> Tensor:
        w, b = p[f"{name}.{layer}.conv.weight"], p[f"{name}.{layer}.conv.bias"]
        return dense_conv_reference(coords, h, w, b, res)

    emb_out = F.linear(
        F.silu(emb), p[f"{name}.emb_layers.1.weight"], p[f"{name}.emb_layers.1.bias"]
    )
    scale, shift = emb_out.chunk(2, dim=1)  # scale first in the res blocks
    batch = coords[:, 0].long()
    h = F.silu(layer_norm(x, p[f"{name}.norm1.weight"], p[f"{name}.norm1.bias"]))
    h = conv(h, "conv1")
    h = F.silu(layer_norm(h) * (1 + scale[batch]) + shift[batch])
    h = conv(h, "conv2")
    if f"{name}.skip_connection.weight" in p:
        x = F.linear(x, p[f"{name}.skip_connection.weight"], p[f"{name}.skip_connection.bias"])
    return h + x


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # (L, H, D)
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def rms(x: Tensor, gamma: Tensor) -> Tensor:
    return F.normalize(x, dim=-1) * gamma * math.sqrt(x.shape[-1])


def transformer_block(
    p: dict, name: str, x: Tensor, emb: Tensor, cond: Tensor, heads: int
) -> Tensor:
    def linear(h: Tensor, layer: str) -> Tensor:
        return F.linear(h, p[f"{name}.{layer}.weight"], p[f"{name}.{layer}.bias"])

    mod = linear(F.silu(emb), "adaLN_modulation.1")[0]
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6)
    h = layer_norm(x) * (1 + scale_a) + shift_a
    q, k, v = linear(h, "self_attn.to_qkv").unflatten(-1, (3, heads, -1)).unbind(1)
    q = rms(q, p[f"{name}.self_attn.q_rms_norm.gamma"])
    k = rms(k, p[f"{name}.self_attn.k_rms_norm.gamma"])
    x = x + linear(attention(q, k, v).flatten(1), "self_attn.to_out") * gate_a
    h = layer_norm(x, p[f"{name}.norm2.weight"], p[f"{name}.norm2.bias"])
    q = linear(h, "cross_attn.to_q").unflatten(-1, (heads, -1))
    k, v = linear(cond, "cross_attn.to_kv").unflatten(-1, (2, heads, -1)).unbind(1)
    x = x + linear(attention(q, k, v).flatten(1), "cross_attn.to_out")
    h = layer_norm(x) * (1 + scale_m) + shift_m
    h = linear(F.gelu(linear(h, "mlp.mlp.0"), approximate="tanh"), "mlp.mlp.2")
    return x + h * gate_m


def reference_forward(
    model: SLatFlowModel, coords: Tensor, feats: Tensor, t: Tensor, cond: Tensor
) -> Tensor:
    """One sample at a time, as upstream's maths says (model: TINY, one io stage)."""
    p = {k: v.double() for k, v in model.state_dict().items()}
    outputs = []
    for b in range(int(coords[:, 0].max()) + 1):
        rows = coords[:, 0] == b
        c = coords[rows].clone()
        c[:, 0] = 0
        emb = t_embedding(t[b : b + 1], p)
        h = F.linear(feats[rows].double(), p["input_layer.weight"], p["input_layer.bias"])
        h = res_block(p, "input_blocks.0", c, h, emb, 8)
        skip_fine = h
        coarse, pooled, parent = downsample(c, h)
        h = res_block(p, "input_blocks.1", coarse, pooled, emb, 4)
        skip_coarse = h
        h = h + ape(coarse[:, 1:], 32)
        for i in range(2):
            h = transformer_block(p, f"blocks.{i}", h, emb, cond[b].double(), heads=2)
        h = torch.cat([h, skip_coarse], dim=1)[parent]  # upsample happens inside the block
        h = res_block(p, "out_blocks.0", c, h, emb, 8)
        h = res_block(p, "out_blocks.1", c, torch.cat([h, skip_fine], dim=1), emb, 8)
        h = F.layer_norm(h, h.shape[-1:])
        outputs.append(F.linear(h, p["out_layer.weight"], p["out_layer.bias"]))
    return torch.cat(outputs)


@pytest.mark.parametrize("device", DEVICES)
def test_forward_matches_reference(device: str) -> None:
    model = tiny_model()
    generator = torch.Generator().manual_seed(1)
    coords = random_coords([70, 45], 8, generator)
    feats = torch.randn(len(coords), 4, generator=generator)
    t = torch.tensor([700.0, 250.0])
    cond = torch.randn(2, 5, 12, generator=generator)
    out = model.to(device)(SparseTensor(feats, coords).to(device), t.to(device), cond.to(device))
    with torch.no_grad():
        expected = reference_forward(model.cpu(), coords, feats, t, cond)
    assert out.coords.cpu().equal(coords) and out.feats.dtype == torch.float32
    torch.testing.assert_close(out.feats.detach().cpu().double(), expected, rtol=1e-4, atol=1e-4)


def test_half_torso_runs_close_to_float32() -> None:
    model = tiny_model()
    half = tiny_model(use_fp16=True)
    half.load_state_dict(model.state_dict())
    assert half.dtype == torch.float16 and half.input_layer.weight.dtype == torch.float32
    generator = torch.Generator().manual_seed(2)
    coords = random_coords([60], 8, generator)
    x = SparseTensor(torch.randn(60, 4, generator=generator), coords)
    t, cond = torch.tensor([400.0]), torch.randn(1, 5, 12, generator=generator)
    with torch.no_grad():
        full, reduced = model(x, t, cond).feats, half(x, t, cond).feats
    assert reduced.dtype == torch.float32
    scale = full.abs().max()
    assert (reduced - full).abs().max() < 0.05 * scale


def test_sampler_steps_reuse_the_neighbour_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    original = conv_module.build_neighbour_map

    def counting(coords: Tensor, kernel_size: int) -> Tensor:
        builds.append(len(coords))
        return original(coords, kernel_size)

    monkeypatch.setattr(conv_module, "build_neighbour_map", counting)
    model = tiny_model()
    generator = torch.Generator().manual_seed(3)
    coords = random_coords([50], 8, generator)
    x = SparseTensor(torch.randn(50, 4, generator=generator), coords)
    cond = torch.randn(1, 5, 12, generator=generator)
    with torch.no_grad():
        for t in (900.0, 500.0, 100.0):  # cond and uncond passes share the maps too
            v = model(x, torch.tensor([t]), cond)
            model(x, torch.tensor([t]), torch.zeros_like(cond))
            x = x.replace(x.feats - 0.1 * v.feats)
        # A sampler that builds a new tensor each step on the same coords finds them too.
        model(SparseTensor(x.feats, coords), torch.tensor([50.0]), cond)
    assert len(builds) == 2  # one map at 8^3, one at 4^3


def test_rope_and_mismatched_patch_size_are_refused() -> None:
    with pytest.raises(ValueError, match="pe_mode"):
        SLatFlowModel(**{**TINY, "pe_mode": "rope"})
    with pytest.raises(ValueError, match="patch_size"):
        SLatFlowModel(**{**TINY, "patch_size": 4})
