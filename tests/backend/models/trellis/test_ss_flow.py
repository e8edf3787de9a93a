"""ss_flow.py against the maths of research 1.3, written out independently here.

The references below use explicit loops and formulas (naive softmax attention, hand-written
layer norms, the adaLN chunk order shift/scale/gate), so an order or layout slip in the module
shows up as a mismatch.
"""

from __future__ import annotations

import math

import pytest
import torch

from backend.models.trellis import testing
from backend.models.trellis.config import TINY_SS_FLOW
from backend.models.trellis.ss_flow import (
    ModulatedTransformerCrossBlock,
    MultiHeadRMSNorm,
    SparseStructureFlowModel,
    patchify,
    position_embedding,
    timestep_embedding,
    unpatchify,
)
from backend.models.trellis.transformer import DenseTokens


def test_the_timestep_embedding_is_cos_then_sin() -> None:
    t = torch.tensor([0.0, 437.5])
    embedding = timestep_embedding(t, 256)
    assert embedding.shape == (2, 256)
    assert torch.all(embedding[0, :128] == 1) and torch.all(embedding[0, 128:] == 0)
    for i in (0, 5, 127):
        freq = math.exp(-math.log(10000) * i / 128)
        assert embedding[1, i].item() == pytest.approx(math.cos(437.5 * freq), abs=1e-4)
        assert embedding[1, 128 + i].item() == pytest.approx(math.sin(437.5 * freq), abs=1e-4)
    assert timestep_embedding(t, 7)[:, -1].abs().sum() == 0  # odd widths are zero-padded


def test_the_position_embedding_is_sin_then_cos_per_axis_zero_padded() -> None:
    coords = torch.tensor([[1, 2, 3]])
    embedding = position_embedding(coords, 64)  # 64 // 3 // 2 = 10 frequencies per axis
    assert embedding.shape == (1, 64)
    for axis, value in enumerate((1, 2, 3)):
        for i in range(10):
            freq = 1.0 / 10000 ** (i / 10)
            block = embedding[0, axis * 20 : axis * 20 + 20]
            assert block[i].item() == pytest.approx(math.sin(value * freq), abs=1e-5)
            assert block[10 + i].item() == pytest.approx(math.cos(value * freq), abs=1e-5)
    assert torch.all(embedding[0, 60:] == 0)


def test_the_stored_position_buffer_follows_the_x_major_token_order() -> None:
    model = SparseStructureFlowModel(TINY_SS_FLOW)
    side = TINY_SS_FLOW.resolution
    x, y, z = 2, 1, 3
    token = x * side * side + y * side + z
    expected = position_embedding(torch.tensor([[x, y, z]]), TINY_SS_FLOW.model_channels)[0]
    assert torch.allclose(model.pos_emb[token], expected)


def test_rms_norm_is_unit_norm_times_gamma_times_root_width() -> None:
    norm = MultiHeadRMSNorm(8, 2)
    norm.gamma.data = torch.rand(2, 8) + 0.5
    x = torch.randn(3, 5, 2, 8).half()
    expected = x.float() / x.float().norm(dim=-1, keepdim=True) * norm.gamma * math.sqrt(8)
    out = norm(x)
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), expected, atol=2e-3)


def _layer_norm(x: torch.Tensor, eps: float, weight=None, bias=None) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    out = (x - mean) / torch.sqrt(var + eps)
    return out * weight + bias if weight is not None else out


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, L, H, D) naive softmax attention."""
    scores = torch.einsum("blhd,bshd->bhls", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("bhls,bshd->blhd", scores.softmax(-1), v)


def _linear(layer: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return x @ layer.weight.T + layer.bias


def _rms(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True) * gamma * math.sqrt(x.shape[-1])


def reference_block(block: ModulatedTransformerCrossBlock, x, t_emb, context, heads: int):
    """Research 1.3's block, step by step."""
    batch, length, width = x.shape
    mod = _linear(block.adaLN_modulation[1], torch.nn.functional.silu(t_emb))
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
        mod[:, i * width : (i + 1) * width][:, None] for i in range(6)
    )
    h = _layer_norm(x, 1e-6) * (1 + scale_msa) + shift_msa
    qkv = _linear(block.self_attn.to_qkv, h).reshape(batch, length, 3, heads, width // heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    q, k = _rms(q, block.self_attn.q_rms_norm.gamma), _rms(k, block.self_attn.k_rms_norm.gamma)
    attended = _attention(q, k, v).reshape(batch, length, width)
    x = x + _linear(block.self_attn.to_out, attended) * gate_msa
    h = _layer_norm(x, 1e-6, block.norm2.weight, block.norm2.bias)
    q = _linear(block.cross_attn.to_q, h).reshape(batch, length, heads, -1)
    kv = _linear(block.cross_attn.to_kv, context).reshape(batch, context.shape[1], 2, heads, -1)
    attended = _attention(q, kv[:, :, 0], kv[:, :, 1]).reshape(batch, length, width)
    x = x + _linear(block.cross_attn.to_out, attended)
    h = _layer_norm(x, 1e-6) * (1 + scale_mlp) + shift_mlp
    hidden = _linear(block.mlp.mlp[0], h)
    hidden = (
        0.5 * hidden * (1 + torch.tanh(math.sqrt(2 / math.pi) * (hidden + 0.044715 * hidden**3)))
    )
    return x + _linear(block.mlp.mlp[2], hidden) * gate_mlp


@pytest.fixture(scope="module")
def model() -> SparseStructureFlowModel:
    model = testing.randomize(SparseStructureFlowModel(TINY_SS_FLOW), seed=21).eval()
    model.convert_torso(torch.float32)  # the references compute in float32
    return model


def test_a_block_matches_the_reference_maths(model: SparseStructureFlowModel) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 64, generator=generator)
    t_emb = torch.randn(2, 64, generator=generator)
    context = torch.randn(2, 21, 32, generator=generator)
    block = model.blocks[0]
    with torch.no_grad():
        ours = block(x, t_emb, context, DenseTokens())
        expected = reference_block(block, x, t_emb, context, heads=2)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-4)


def test_the_model_is_patchify_embed_blocks_norm_project(model: SparseStructureFlowModel) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 4, 4, 4, generator=generator)
    t = torch.tensor([1000 * 0.75])
    cond = torch.randn(1, 21, 32, generator=generator)
    with torch.no_grad():
        ours = model(x, t, cond)
        h = _linear(model.input_layer, x.reshape(1, 8, 64).transpose(1, 2)) + model.pos_emb
        t_emb = model.t_embedder(t)
        for block in model.blocks:
            h = reference_block(block, h, t_emb, cond, heads=2)
        h = _linear(model.out_layer, _layer_norm(h, 1e-5))
        expected = h.transpose(1, 2).reshape(1, 8, 4, 4, 4)
    assert ours.shape == x.shape and ours.dtype == torch.float32
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-4)


def test_the_fp16_torso_runs_half_and_returns_float32(model: SparseStructureFlowModel) -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(1, 8, 4, 4, 4, generator=generator)
    t, cond = torch.tensor([900.0]), torch.randn(1, 21, 32, generator=generator)
    half = SparseStructureFlowModel(TINY_SS_FLOW)  # use_fp16: built with a half torso
    half.load_state_dict(model.state_dict())
    assert half.blocks[0].self_attn.to_qkv.weight.dtype == torch.float16
    assert half.blocks[0].self_attn.q_rms_norm.gamma.dtype == torch.float32
    assert half.input_layer.weight.dtype == torch.float32
    with torch.no_grad():
        full, reduced = model(x, t, cond), half(x, t, cond)
    assert reduced.dtype == torch.float32
    assert (reduced - full).norm() / full.norm() < 1e-2


def test_patchify_and_unpatchify_are_inverse_and_channel_major() -> None:
    x = torch.arange(2 * 3 * 4 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4, 4)
    patched = patchify(x, 2)
    assert patched.shape == (2, 24, 2, 2, 2)
    # channel c, offset (i, j, k) of patch (X, Y, Z) is voxel (2X + i, 2Y + j, 2Z + k).
    assert patched[1, 2 * 8 + 1 * 4 + 0 * 2 + 1, 1, 0, 1] == x[1, 2, 3, 0, 3]
    assert torch.equal(unpatchify(patched, 2), x)
    assert torch.equal(patchify(x, 1), x)
