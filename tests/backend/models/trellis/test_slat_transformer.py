"""Shared transformer pieces: embeddings, RMS norm, and dense vs sparse token layouts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from backend.models.sparse import SparseConv3d, SparseTensor, SparseTokens
from backend.models.trellis.transformer import (
    AbsolutePositionEmbedder,
    DenseTokens,
    ModulatedTransformerCrossBlock,
    MultiHeadRMSNorm,
    TransformerBlock,
    convert_torso,
    timestep_embedding,
)


def test_timestep_embedding_is_cosines_then_sines() -> None:
    t = torch.tensor([0.0, 250.0])
    embedding = timestep_embedding(t, 8)
    freqs = [math.exp(-math.log(10000) * i / 4) for i in range(4)]
    expected = [
        [math.cos(v * f) for f in freqs] + [math.sin(v * f) for f in freqs] for v in (0, 250)
    ]
    torch.testing.assert_close(embedding, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_position_embedding_is_sin_cos_per_axis_zero_padded() -> None:
    embedder = AbsolutePositionEmbedder(14)  # freq_dim = 14 // 3 // 2 = 2: 12 values + 2 zeros
    out = embedder(torch.tensor([[1, 2, 3]], dtype=torch.int32))[0]
    freqs = [1.0, 1.0 / 10000**0.5]
    expected = []
    for p in (1, 2, 3):
        expected += [math.sin(p * f) for f in freqs] + [math.cos(p * f) for f in freqs]
    torch.testing.assert_close(out, torch.tensor([*expected, 0.0, 0.0]))
    assert out.dtype == torch.float32 and not list(embedder.state_dict())


def test_rms_norm_scales_unit_vectors_by_sqrt_dim() -> None:
    norm = MultiHeadRMSNorm(4, 2)
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([[1.0, 1, 1, 1], [2, 2, 2, 2]]))
    out = norm(torch.tensor([[[3.0, 0, 4, 0], [0, 0, 0, 5]]]))
    torch.testing.assert_close(out, torch.tensor([[[1.2, 0, 1.6, 0], [0, 0, 0, 4.0]]]))


def test_dense_and_sparse_layouts_give_the_same_block_output() -> None:
    torch.manual_seed(0)
    block = ModulatedTransformerCrossBlock(32, 12, num_heads=4, qk_rms_norm=True).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    tokens = torch.randn(2, 9, 32)
    mod, context = torch.randn(2, 32), torch.randn(2, 5, 12)
    coords = torch.tensor([[b, i, 0, 0] for b in range(2) for i in range(9)], dtype=torch.int32)
    sparse = SparseTensor(tokens.reshape(18, 32), coords)
    with torch.no_grad():
        dense_out = block(tokens, mod, context, DenseTokens())
        sparse_out = block(sparse.feats, mod, context, SparseTokens(sparse))
    torch.testing.assert_close(sparse_out, dense_out.reshape(18, 32), rtol=1e-5, atol=1e-5)
    # Each sample's tokens attend only among themselves and use their own modulation.
    with torch.no_grad():
        alone = block(tokens[1:], mod[1:], context[1:], DenseTokens())
    torch.testing.assert_close(dense_out[1:], alone, rtol=1e-5, atol=1e-5)


def test_windowed_blocks_need_sparse_tokens() -> None:
    block = TransformerBlock(16, 2, window=(4, 2))
    with pytest.raises(NotImplementedError):
        block(torch.zeros(1, 3, 16), DenseTokens())


def test_convert_torso_casts_linear_and_conv_weights_only() -> None:
    model = nn.ModuleDict(
        {
            "linear": nn.Linear(4, 4),
            "conv": SparseConv3d(4, 4, 3),
            "norm": nn.LayerNorm(4),
            "rms": MultiHeadRMSNorm(2, 2),
        }
    )
    convert_torso(model, torch.float16)
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    assert dtypes == {
        "linear.weight": torch.float16,
        "linear.bias": torch.float16,
        "conv.conv.weight": torch.float16,
        "conv.conv.bias": torch.float16,
        "norm.weight": torch.float32,
        "norm.bias": torch.float32,
        "rms.gamma": torch.float32,
    }
