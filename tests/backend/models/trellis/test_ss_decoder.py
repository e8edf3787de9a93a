"""ss_decoder.py: the 3D pixel shuffle's index map, the blocks' maths, the occupied voxels."""

from __future__ import annotations

import itertools

import torch
from torch.nn import functional as nnf

from backend.models.trellis import testing
from backend.models.trellis.config import TINY_SS_DECODER
from backend.models.trellis.ss_decoder import (
    ChannelLayerNorm32,
    SparseStructureDecoder,
    occupied_coords,
    pixel_shuffle_3d,
)


def test_pixel_shuffle_3d_moves_each_channel_to_its_sub_voxel() -> None:
    x = torch.randn(2, 3 * 8, 2, 3, 4)
    out = pixel_shuffle_3d(x, 2)
    assert out.shape == (2, 3, 4, 6, 8)
    for b, c, i, j, k, gx, gy, gz in itertools.product(
        range(2), range(3), range(2), range(2), range(2), range(2), range(3), range(4)
    ):
        channel = c * 8 + i * 4 + j * 2 + k
        assert out[b, c, 2 * gx + i, 2 * gy + j, 2 * gz + k] == x[b, channel, gx, gy, gz]


def test_channel_layer_norm_normalises_each_voxel_over_channels() -> None:
    norm = ChannelLayerNorm32(6)
    norm.weight.data, norm.bias.data = torch.rand(6) + 0.5, torch.randn(6)
    x = torch.randn(2, 6, 3, 3, 3).half()
    expected = nnf.layer_norm(x.float().movedim(1, -1), (6,), norm.weight, norm.bias, 1e-5)
    out = norm(x)
    assert out.dtype == torch.float16
    assert torch.allclose(out.float(), expected.movedim(-1, 1), atol=3e-3)


def test_the_decoder_is_input_conv_blocks_and_output_head() -> None:
    decoder = testing.randomize(SparseStructureDecoder(TINY_SS_DECODER), seed=31).eval()
    decoder.convert_torso(torch.float32)
    z = torch.randn(1, 8, 4, 4, 4, generator=torch.Generator().manual_seed(0))

    def block(module, h):
        h1 = nnf.conv3d(
            nnf.silu(module.norm1(h)), module.conv1.weight, module.conv1.bias, padding=1
        )
        h2 = nnf.conv3d(
            nnf.silu(module.norm2(h1)), module.conv2.weight, module.conv2.bias, padding=1
        )
        return h2 + h

    with torch.no_grad():
        ours = decoder(z)
        h = nnf.conv3d(z, decoder.input_layer.weight, decoder.input_layer.bias, padding=1)
        for module in [*decoder.middle_block, *decoder.blocks]:
            if hasattr(module, "conv1"):
                h = block(module, h)
            else:  # upsampling: conv to 8x channels, then the shuffle
                h = pixel_shuffle_3d(
                    nnf.conv3d(h, module.conv.weight, module.conv.bias, padding=1), 2
                )
        head = decoder.out_layer
        expected = nnf.conv3d(nnf.silu(head[0](h)), head[2].weight, head[2].bias, padding=1)
    assert ours.shape == (1, 1, 16, 16, 16)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-4)
    half = SparseStructureDecoder(TINY_SS_DECODER)  # use_fp16: built with a half torso
    half.load_state_dict(decoder.state_dict())
    assert half.blocks[0].conv1.weight.dtype == torch.float16
    with torch.no_grad():
        reduced = half(z)
    assert reduced.dtype == torch.float32
    assert (reduced - ours).norm() / ours.norm() < 1e-2


def test_occupied_voxels_are_positive_logits_in_row_major_order() -> None:
    logits = torch.full((2, 1, 4, 4, 4), -1.0)
    positive = [(1, 3, 0, 2), (0, 2, 1, 1), (0, 0, 3, 0), (1, 0, 0, 0), (0, 2, 1, 0)]
    for b, x, y, z in positive:
        logits[b, 0, x, y, z] = 0.5
    logits[0, 0, 1, 1, 1] = 0.0  # exactly zero is empty
    coords = occupied_coords(logits)
    assert coords.dtype == torch.int32
    assert coords.tolist() == sorted(list(p) for p in positive)
