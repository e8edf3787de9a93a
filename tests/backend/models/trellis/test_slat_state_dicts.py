"""State-dict keys, shapes and dtypes of the SLat networks against research Appendix templates.

The Appendix of ``shared/research/trellis.md`` lists the official checkpoints' tensors (derived
from upstream's modules; the per-file totals reproduce the Hugging Face file sizes). Here:

- ``APPENDIX`` holds those listings verbatim for the four files this layer builds;
- ``TEMPLATES`` restate them with shapes as expressions of the JSON args (C = model channels,
  IO = io block channels, ...), checked to give the Appendix exactly at the official args;
- every network is built from a tiny config and must produce its template's keys, shapes and
  stored dtypes (``use_fp16``: half torso, float32 rest), and at the official args (on the
  ``meta`` device, no memory) must produce the Appendix listing and totals.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from backend.models.trellis.slat_decoders import (
    SLatGaussianDecoder,
    SLatMeshDecoder,
    SLatRadianceFieldDecoder,
)
from backend.models.trellis.slat_flow import SLatFlowModel

# fmt: off
APPENDIX = {
    "slat_flow": """
    # slat_flow_img_dit_L_64l8p2_fp16: 526 tensors, 600.43M elements, ~1203.7 MB
    t_embedder.mlp.0.weight [1024, 256] f32
    t_embedder.mlp.0.bias [1024] f32
    t_embedder.mlp.2.weight [1024, 1024] f32
    t_embedder.mlp.2.bias [1024] f32
    input_layer.weight [128, 8] f32
    input_layer.bias [128] f32
    input_blocks.0.norm1.weight [128] f32
    input_blocks.0.norm1.bias [128] f32
    input_blocks.0.conv1.conv.weight [128, 3, 3, 3, 128] f16
    input_blocks.0.conv1.conv.bias [128] f16
    input_blocks.0.conv2.conv.weight [128, 3, 3, 3, 128] f16
    input_blocks.0.conv2.conv.bias [128] f16
    input_blocks.0.emb_layers.1.weight [256, 1024] f16
    input_blocks.0.emb_layers.1.bias [256] f16
    input_blocks.1.norm1.weight [128] f32
    input_blocks.1.norm1.bias [128] f32
    input_blocks.1.conv1.conv.weight [1024, 3, 3, 3, 128] f16
    input_blocks.1.conv1.conv.bias [1024] f16
    input_blocks.1.conv2.conv.weight [1024, 3, 3, 3, 1024] f16
    input_blocks.1.conv2.conv.bias [1024] f16
    input_blocks.1.emb_layers.1.weight [2048, 1024] f16
    input_blocks.1.emb_layers.1.bias [2048] f16
    input_blocks.1.skip_connection.weight [1024, 128] f16
    input_blocks.1.skip_connection.bias [1024] f16
    blocks.{i}.norm2.weight [1024] f32
    blocks.{i}.norm2.bias [1024] f32
    blocks.{i}.self_attn.to_qkv.weight [3072, 1024] f16
    blocks.{i}.self_attn.to_qkv.bias [3072] f16
    blocks.{i}.self_attn.q_rms_norm.gamma [16, 64] f32
    blocks.{i}.self_attn.k_rms_norm.gamma [16, 64] f32
    blocks.{i}.self_attn.to_out.weight [1024, 1024] f16
    blocks.{i}.self_attn.to_out.bias [1024] f16
    blocks.{i}.cross_attn.to_q.weight [1024, 1024] f16
    blocks.{i}.cross_attn.to_q.bias [1024] f16
    blocks.{i}.cross_attn.to_kv.weight [2048, 1024] f16
    blocks.{i}.cross_attn.to_kv.bias [2048] f16
    blocks.{i}.cross_attn.to_out.weight [1024, 1024] f16
    blocks.{i}.cross_attn.to_out.bias [1024] f16
    blocks.{i}.mlp.mlp.0.weight [4096, 1024] f16
    blocks.{i}.mlp.mlp.0.bias [4096] f16
    blocks.{i}.mlp.mlp.2.weight [1024, 4096] f16
    blocks.{i}.mlp.mlp.2.bias [1024] f16
    blocks.{i}.adaLN_modulation.1.weight [6144, 1024] f16
    blocks.{i}.adaLN_modulation.1.bias [6144] f16
    out_blocks.0.norm1.weight [2048] f32
    out_blocks.0.norm1.bias [2048] f32
    out_blocks.0.conv1.conv.weight [128, 3, 3, 3, 2048] f16
    out_blocks.0.conv1.conv.bias [128] f16
    out_blocks.0.conv2.conv.weight [128, 3, 3, 3, 128] f16
    out_blocks.0.conv2.conv.bias [128] f16
    out_blocks.0.emb_layers.1.weight [256, 1024] f16
    out_blocks.0.emb_layers.1.bias [256] f16
    out_blocks.0.skip_connection.weight [128, 2048] f16
    out_blocks.0.skip_connection.bias [128] f16
    out_blocks.1.norm1.weight [256] f32
    out_blocks.1.norm1.bias [256] f32
    out_blocks.1.conv1.conv.weight [128, 3, 3, 3, 256] f16
    out_blocks.1.conv1.conv.bias [128] f16
    out_blocks.1.conv2.conv.weight [128, 3, 3, 3, 128] f16
    out_blocks.1.conv2.conv.bias [128] f16
    out_blocks.1.emb_layers.1.weight [256, 1024] f16
    out_blocks.1.emb_layers.1.bias [256] f16
    out_blocks.1.skip_connection.weight [128, 256] f16
    out_blocks.1.skip_connection.bias [128] f16
    out_layer.weight [8, 128] f32
    out_layer.bias [8] f32
""",
    "gaussian": """
    # slat_dec_gs_swin8_B_64l8gs32_fp16: 101 tensors, 85.37M elements, ~171.4 MB
    input_layer.weight [768, 8] f32
    input_layer.bias [768] f32
    blocks.{i}.attn.to_qkv.weight [2304, 768] f16
    blocks.{i}.attn.to_qkv.bias [2304] f16
    blocks.{i}.attn.to_out.weight [768, 768] f16
    blocks.{i}.attn.to_out.bias [768] f16
    blocks.{i}.mlp.mlp.0.weight [3072, 768] f16
    blocks.{i}.mlp.mlp.0.bias [3072] f16
    blocks.{i}.mlp.mlp.2.weight [768, 3072] f16
    blocks.{i}.mlp.mlp.2.bias [768] f16
    out_layer.weight [448, 768] f32
    out_layer.bias [448] f32
    offset_perturbation [32, 3] f32
""",
    "radiance_field": """
    # slat_dec_rf_swin8_B_64l8r16_fp16: 100 tensors, 85.37M elements, ~171.4 MB
    input_layer.weight [768, 8] f32
    input_layer.bias [768] f32
    blocks.{i}.attn.to_qkv.weight [2304, 768] f16
    blocks.{i}.attn.to_qkv.bias [2304] f16
    blocks.{i}.attn.to_out.weight [768, 768] f16
    blocks.{i}.attn.to_out.bias [768] f16
    blocks.{i}.mlp.mlp.0.weight [3072, 768] f16
    blocks.{i}.mlp.mlp.0.bias [3072] f16
    blocks.{i}.mlp.mlp.2.weight [768, 3072] f16
    blocks.{i}.mlp.mlp.2.bias [768] f16
    out_layer.weight [448, 768] f32
    out_layer.bias [448] f32
""",
    "mesh": """
    # slat_dec_mesh_swin8_B_64l8m256c_fp16: 120 tensors, 90.93M elements, ~181.9 MB
    input_layer.weight [768, 8] f32
    input_layer.bias [768] f32
    blocks.{i}.attn.to_qkv.weight [2304, 768] f16
    blocks.{i}.attn.to_qkv.bias [2304] f16
    blocks.{i}.attn.to_out.weight [768, 768] f16
    blocks.{i}.attn.to_out.bias [768] f16
    blocks.{i}.mlp.mlp.0.weight [3072, 768] f16
    blocks.{i}.mlp.mlp.0.bias [3072] f16
    blocks.{i}.mlp.mlp.2.weight [768, 3072] f16
    blocks.{i}.mlp.mlp.2.bias [768] f16
    upsample.0.act_layers.0.weight [768] f32
    upsample.0.act_layers.0.bias [768] f32
    upsample.0.out_layers.0.conv.weight [192, 3, 3, 3, 768] f16
    upsample.0.out_layers.0.conv.bias [192] f16
    upsample.0.out_layers.1.weight [192] f32
    upsample.0.out_layers.1.bias [192] f32
    upsample.0.out_layers.3.conv.weight [192, 3, 3, 3, 192] f16
    upsample.0.out_layers.3.conv.bias [192] f16
    upsample.0.skip_connection.conv.weight [192, 1, 1, 1, 768] f16
    upsample.0.skip_connection.conv.bias [192] f16
    upsample.1.act_layers.0.weight [192] f32
    upsample.1.act_layers.0.bias [192] f32
    upsample.1.out_layers.0.conv.weight [96, 3, 3, 3, 192] f16
    upsample.1.out_layers.0.conv.bias [96] f16
    upsample.1.out_layers.1.weight [96] f32
    upsample.1.out_layers.1.bias [96] f32
    upsample.1.out_layers.3.conv.weight [96, 3, 3, 3, 96] f16
    upsample.1.out_layers.3.conv.bias [96] f16
    upsample.1.skip_connection.conv.weight [96, 1, 1, 1, 192] f16
    upsample.1.skip_connection.conv.bias [96] f16
    out_layer.weight [101, 96] f32
    out_layer.bias [101] f32
""",
}
# fmt: on

TRUNK = """
    input_layer.weight [C, IN] f32
    input_layer.bias [C] f32
    blocks.{i}.attn.to_qkv.weight [3*C, C] f16
    blocks.{i}.attn.to_qkv.bias [3*C] f16
    blocks.{i}.attn.to_out.weight [C, C] f16
    blocks.{i}.attn.to_out.bias [C] f16
    blocks.{i}.mlp.mlp.0.weight [M, C] f16
    blocks.{i}.mlp.mlp.0.bias [M] f16
    blocks.{i}.mlp.mlp.2.weight [C, M] f16
    blocks.{i}.mlp.mlp.2.bias [C] f16
"""


def res_block(name: str, cin: str, cout: str, skip: bool) -> str:
    lines = f"""
    {name}.norm1.weight [{cin}] f32
    {name}.norm1.bias [{cin}] f32
    {name}.conv1.conv.weight [{cout}, 3, 3, 3, {cin}] f16
    {name}.conv1.conv.bias [{cout}] f16
    {name}.conv2.conv.weight [{cout}, 3, 3, 3, {cout}] f16
    {name}.conv2.conv.bias [{cout}] f16
    {name}.emb_layers.1.weight [2*{cout}, C] f16
    {name}.emb_layers.1.bias [2*{cout}] f16
"""
    if skip:
        lines += f"""    {name}.skip_connection.weight [{cout}, {cin}] f16
    {name}.skip_connection.bias [{cout}] f16
"""
    return lines


def subdivide_block(name: str, cin: str, cout: str) -> str:
    return f"""
    {name}.act_layers.0.weight [{cin}] f32
    {name}.act_layers.0.bias [{cin}] f32
    {name}.out_layers.0.conv.weight [{cout}, 3, 3, 3, {cin}] f16
    {name}.out_layers.0.conv.bias [{cout}] f16
    {name}.out_layers.1.weight [{cout}] f32
    {name}.out_layers.1.bias [{cout}] f32
    {name}.out_layers.3.conv.weight [{cout}, 3, 3, 3, {cout}] f16
    {name}.out_layers.3.conv.bias [{cout}] f16
    {name}.skip_connection.conv.weight [{cout}, 1, 1, 1, {cin}] f16
    {name}.skip_connection.conv.bias [{cout}] f16
"""


TEMPLATES = {
    "slat_flow": """
    t_embedder.mlp.0.weight [C, 256] f32
    t_embedder.mlp.0.bias [C] f32
    t_embedder.mlp.2.weight [C, C] f32
    t_embedder.mlp.2.bias [C] f32
    input_layer.weight [IO, IN] f32
    input_layer.bias [IO] f32
"""
    + res_block("input_blocks.0", "IO", "IO", skip=False)
    + res_block("input_blocks.1", "IO", "C", skip=True)
    + """
    blocks.{i}.norm2.weight [C] f32
    blocks.{i}.norm2.bias [C] f32
    blocks.{i}.self_attn.to_qkv.weight [3*C, C] f16
    blocks.{i}.self_attn.to_qkv.bias [3*C] f16
    blocks.{i}.self_attn.q_rms_norm.gamma [H, C//H] f32
    blocks.{i}.self_attn.k_rms_norm.gamma [H, C//H] f32
    blocks.{i}.self_attn.to_out.weight [C, C] f16
    blocks.{i}.self_attn.to_out.bias [C] f16
    blocks.{i}.cross_attn.to_q.weight [C, C] f16
    blocks.{i}.cross_attn.to_q.bias [C] f16
    blocks.{i}.cross_attn.to_kv.weight [2*C, COND] f16
    blocks.{i}.cross_attn.to_kv.bias [2*C] f16
    blocks.{i}.cross_attn.to_out.weight [C, C] f16
    blocks.{i}.cross_attn.to_out.bias [C] f16
    blocks.{i}.mlp.mlp.0.weight [M, C] f16
    blocks.{i}.mlp.mlp.0.bias [M] f16
    blocks.{i}.mlp.mlp.2.weight [C, M] f16
    blocks.{i}.mlp.mlp.2.bias [C] f16
    blocks.{i}.adaLN_modulation.1.weight [6*C, C] f16
    blocks.{i}.adaLN_modulation.1.bias [6*C] f16
"""
    + res_block("out_blocks.0", "2*C", "IO", skip=True)
    + res_block("out_blocks.1", "2*IO", "IO", skip=True)
    + """
    out_layer.weight [OUT, IO] f32
    out_layer.bias [OUT] f32
""",
    "gaussian": TRUNK
    + """
    out_layer.weight [14*G, C] f32
    out_layer.bias [14*G] f32
    offset_perturbation [G, 3] f32
""",
    "radiance_field": TRUNK
    + """
    out_layer.weight [R*(3*DIM+4), C] f32
    out_layer.bias [R*(3*DIM+4)] f32
""",
    "mesh": TRUNK
    + subdivide_block("upsample.0", "C", "C//4")
    + subdivide_block("upsample.1", "C//4", "C//8")
    + """
    out_layer.weight [OUT, C//8] f32
    out_layer.bias [OUT] f32
""",
}

GAUSSIAN_REPRESENTATION = {
    "lr": {"_xyz": 1.0, "_features_dc": 1.0, "_opacity": 1.0, "_scaling": 1.0, "_rotation": 0.1},
    "perturb_offset": True,
    "voxel_size": 1.5,
    "num_gaussians": 32,
    "2d_filter_kernel_size": 0.1,
    "3d_filter_kernel_size": 9e-4,
    "scaling_bias": 4e-3,
    "opacity_bias": 0.1,
    "scaling_activation": "softplus",
}
DECODER_TRUNK = dict(
    resolution=64,
    model_channels=768,
    latent_channels=8,
    num_blocks=12,
    num_heads=12,
    mlp_ratio=4,
    attn_mode="swin",
    window_size=8,
    use_fp16=True,
)
# The official JSON args (research §1.0) and the template symbols they give.
OFFICIAL: dict[str, tuple[type[nn.Module], dict[str, Any], dict[str, int]]] = {
    "slat_flow": (
        SLatFlowModel,
        dict(
            resolution=64,
            in_channels=8,
            out_channels=8,
            model_channels=1024,
            cond_channels=1024,
            num_blocks=24,
            num_heads=16,
            mlp_ratio=4,
            patch_size=2,
            num_io_res_blocks=2,
            io_block_channels=[128],
            pe_mode="ape",
            qk_rms_norm=True,
            use_fp16=True,
        ),
        dict(C=1024, IO=128, IN=8, OUT=8, H=16, COND=1024, M=4096, BLOCKS=24),
    ),
    "gaussian": (
        SLatGaussianDecoder,
        dict(DECODER_TRUNK, representation_config=GAUSSIAN_REPRESENTATION),
        dict(C=768, IN=8, M=3072, G=32, BLOCKS=12),
    ),
    "radiance_field": (
        SLatRadianceFieldDecoder,
        dict(DECODER_TRUNK, representation_config={"rank": 16, "dim": 8}),
        dict(C=768, IN=8, M=3072, R=16, DIM=8, BLOCKS=12),
    ),
    "mesh": (
        SLatMeshDecoder,
        dict(DECODER_TRUNK, representation_config={"use_color": True}),
        dict(C=768, IN=8, M=3072, OUT=101, BLOCKS=12),
    ),
}
TINY: dict[str, tuple[dict[str, Any], dict[str, int]]] = {
    "slat_flow": (
        dict(
            resolution=8,
            in_channels=3,
            out_channels=5,
            model_channels=64,
            cond_channels=24,
            num_blocks=2,
            num_heads=2,
            mlp_ratio=2,
            patch_size=2,
            num_io_res_blocks=2,
            io_block_channels=[16],
            qk_rms_norm=True,
            use_fp16=True,
        ),
        dict(C=64, IO=16, IN=3, OUT=5, H=2, COND=24, M=128, BLOCKS=2),
    ),
    "gaussian": (
        dict(
            resolution=8,
            model_channels=64,
            latent_channels=3,
            num_blocks=2,
            num_heads=2,
            mlp_ratio=3,
            window_size=4,
            use_fp16=True,
            representation_config={**GAUSSIAN_REPRESENTATION, "num_gaussians": 5},
        ),
        dict(C=64, IN=3, M=192, G=5, BLOCKS=2),
    ),
    "radiance_field": (
        dict(
            resolution=8,
            model_channels=64,
            latent_channels=3,
            num_blocks=3,
            num_heads=2,
            mlp_ratio=2,
            window_size=4,
            use_fp16=True,
            representation_config={"rank": 2, "dim": 3},
        ),
        dict(C=64, IN=3, M=128, R=2, DIM=3, BLOCKS=3),
    ),
    "mesh": (
        dict(
            resolution=8,
            model_channels=256,
            latent_channels=3,
            num_blocks=1,
            num_heads=4,
            mlp_ratio=1,
            window_size=4,
            use_fp16=True,
            representation_config={"use_color": False},
        ),
        dict(C=256, IN=3, M=256, OUT=53, BLOCKS=1),
    ),
}

ENTRY = re.compile(r"^(\S+) \[([^\]]*)\] (f16|f32)$")
DTYPES = {"f16": torch.float16, "f32": torch.float32}
Listing = dict[str, tuple[tuple[int, ...], torch.dtype]]


def expand(text: str, symbols: dict[str, int]) -> Listing:
    """Template or Appendix text -> {key: (shape, dtype)} with ``{i}`` over the blocks."""
    listing: Listing = {}
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = ENTRY.match(line)
        assert match, line
        key, shape, dtype = match.groups()
        dims = tuple(int(eval(d, {}, dict(symbols))) for d in shape.split(","))
        keys = [key.format(i=i) for i in range(symbols["BLOCKS"])] if "{i}" in key else [key]
        for k in keys:
            listing[k] = (dims, DTYPES[dtype])
    return listing


def listing_of(model: nn.Module) -> Listing:
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(APPENDIX))
def test_templates_give_the_appendix_at_the_official_args(name: str) -> None:
    symbols = OFFICIAL[name][2]
    assert expand(TEMPLATES[name], symbols) == expand(APPENDIX[name], symbols)


@pytest.mark.parametrize("name", list(APPENDIX))
def test_full_size_networks_match_the_appendix(name: str) -> None:
    cls, args, symbols = OFFICIAL[name]
    with torch.device("meta"):
        model = cls(**args)
    listing = listing_of(model)
    assert listing == expand(APPENDIX[name], symbols)
    header = APPENDIX[name].strip().splitlines()[0]
    tensors, elements, megabytes = re.search(
        r"(\d+) tensors, ([\d.]+)M elements, ~([\d.]+) MB", header
    ).groups()
    assert len(listing) == int(tensors)
    values = model.state_dict().values()
    assert round(sum(v.numel() for v in values) / 1e6, 2) == float(elements)
    assert round(sum(v.numel() * v.element_size() for v in values) / 1e6, 1) == float(megabytes)


@pytest.mark.parametrize("name", list(APPENDIX))
def test_tiny_networks_follow_the_templates(name: str) -> None:
    cls = OFFICIAL[name][0]
    args, symbols = TINY[name]
    assert listing_of(cls(**args)) == expand(TEMPLATES[name], symbols)
    float_model = cls(**{**args, "use_fp16": False})
    assert {dtype for _, dtype in listing_of(float_model).values()} == {torch.float32}
