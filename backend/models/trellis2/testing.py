"""Tiny random TRELLIS.2 weights in the official layout, for tests (production never imports it).

``write_tiny_weights(folder, "trellis2-4b")`` writes pipeline.json and the seven ``ckpts/`` pairs
``download trellis2-4b`` fetches (flows' blocks stored bf16, decoders' blocks fp16, the rest
fp32); ``write_tiny_components`` writes the components: TRELLIS v1's structure decoder
(``decoders``), a transformers-format DINOv3 (``dinov3``) and the shape encoder texturing reads
(``encoder``, two 2x Spatial2Channel downsamplings). Every structural feature
of the release is kept (RoPE, share_mod, q/k RMS norms on both attentions, 4 registers, S2C/C2S
upsampling with predicted and followed subdivisions) at sizes that run in about a second: a
4^3 structure latent -> 16^3 occupancy -> an 8^3 shape grid -> two 2x upsamplings (a 32^3 mesh
grid; the release: 32^3 -> 512^3 through four).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from backend.models.trellis import testing as v1_testing
from backend.models.trellis.config import TINY_SS_DECODER, NetworkSpec
from backend.models.trellis.loading import stored_state
from backend.models.trellis.loading import write_network as write_v1_network
from backend.models.trellis.ss_decoder import SparseStructureDecoder
from backend.models.trellis2 import adapter as cards
from backend.models.trellis2.config import (
    RELEASED_SAMPLERS,
    SHAPE_DECODER,
    SHAPE_ENCODER,
    SHAPE_ENCODER_STEM,
    SHAPE_FLOW_512,
    SHAPE_FLOW_1024,
    SS_DECODER,
    SS_FLOW,
    TEX_DECODER,
    TEX_FLOW_512,
    TEX_FLOW_1024,
    Trellis2PipelineConfig,
)
from backend.models.trellis2.loading import build_network, write_network

MODEL_ID = "trellis2-4b"
TINY_COND_CHANNELS = 32
TINY_LATENT = 32
_FLOW = dict(
    model_channels=64, cond_channels=TINY_COND_CHANNELS, num_blocks=2, num_heads=2,
    mlp_ratio=4.0, pe_mode="rope", share_mod=True, initialization="scaled",
    qk_rms_norm=True, qk_rms_norm_cross=True,
)  # fmt: skip
TINY_SS_FLOW = dict(resolution=4, in_channels=8, out_channels=8, **_FLOW)
TINY_SHAPE_FLOW = dict(resolution=8, in_channels=TINY_LATENT, out_channels=TINY_LATENT, **_FLOW)
TINY_SHAPE_FLOW_HR = dict(TINY_SHAPE_FLOW, resolution=16)
TINY_TEX_FLOW = dict(resolution=8, in_channels=2 * TINY_LATENT, out_channels=TINY_LATENT, **_FLOW)
_DECODER = dict(
    model_channels=[64, 32, 16], latent_channels=TINY_LATENT, num_blocks=[1, 1, 0],
    block_type=["SparseConvNeXtBlock3d"] * 3, up_block_type=["SparseResBlockC2S3d"] * 2,
    block_args=[{"use_checkpoint": False}] * 3, use_fp16=True,
)  # fmt: skip
TINY_SHAPE_DECODER = dict(resolution=32, **_DECODER)
TINY_TEX_DECODER = dict(out_channels=6, pred_subdiv=False, **_DECODER)
TINY_SHAPE_ENCODER = dict(
    model_channels=[16, 32, 64], latent_channels=TINY_LATENT, num_blocks=[0, 1, 1],
    block_type=["SparseConvNeXtBlock3d"] * 3, down_block_type=["SparseResBlockS2C3d"] * 2,
    block_args=[{"use_checkpoint": False}] * 3, use_fp16=True,
)  # fmt: skip
# 64 px patches: the conditioning sizes stay the release's 512 / 1024 px (framing, resize and
# patch grid all run), but as 8^2 / 16^2 tokens instead of 32^2 / 64^2, which took the cascade
# test from ~7 s to ~2 s on two cores (the flows cross-attend to every token).
TINY_DINOV3 = dict(
    hidden_size=TINY_COND_CHANNELS, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=2, num_register_tokens=4, patch_size=64, layerscale_value=1.0,
)  # fmt: skip
# Subdivision logits biased up so most children exist and the tiny mesh is closed enough.
TINY_SUBDIVISION_BIAS = 1.0
TINY_PARAMETERS: dict[str, dict[str, Any]] = {
    MODEL_ID: {"resolution": "512", "structure_steps": 1, "shape_steps": 1, "texture_steps": 1}
}
NETWORKS: dict[str, tuple[str, dict[str, Any], torch.dtype, int]] = {
    SS_FLOW: ("SparseStructureFlowModel", TINY_SS_FLOW, torch.bfloat16, 11),
    SHAPE_FLOW_512: ("ElasticSLatFlowModel", TINY_SHAPE_FLOW, torch.bfloat16, 12),
    SHAPE_FLOW_1024: ("ElasticSLatFlowModel", TINY_SHAPE_FLOW_HR, torch.bfloat16, 13),
    TEX_FLOW_512: ("ElasticSLatFlowModel", TINY_TEX_FLOW, torch.bfloat16, 14),
    TEX_FLOW_1024: ("ElasticSLatFlowModel", TINY_TEX_FLOW, torch.bfloat16, 15),
    SHAPE_DECODER: ("FlexiDualGridVaeDecoder", TINY_SHAPE_DECODER, torch.float16, 16),
    TEX_DECODER: ("SparseUnetVaeDecoder", TINY_TEX_DECODER, torch.float16, 17),
}


def pipeline_config() -> Trellis2PipelineConfig:
    generator = torch.Generator().manual_seed(0)
    mean = (0.1 * torch.randn(TINY_LATENT, generator=generator)).tolist()
    std = (1 + 0.1 * torch.rand(TINY_LATENT, generator=generator)).tolist()
    return Trellis2PipelineConfig(
        models={**cards.STEMS, SS_DECODER: cards.SS_DECODER_REFERENCE},
        samplers=dict(RELEASED_SAMPLERS),
        shape_mean=tuple(mean), shape_std=tuple(std),
        tex_mean=tuple(reversed(mean)), tex_std=tuple(reversed(std)),
        image_cond_model={"name": "DinoV3FeatureExtractor",
                          "args": {"model_name": "facebook/dinov3-vitl16-pretrain-lvd1689m"}},
        rembg_model={"name": "BiRefNet", "args": {"model_name": "briaai/RMBG-2.0"}},
        default_pipeline_type="1024_cascade",
    )  # fmt: skip


def tiny_network(role: str) -> nn.Module:
    """A random tiny network of ``role`` in its stored dtypes."""
    name, args, torso, seed = NETWORKS[role]
    network = v1_testing.randomize(build_network(name, args, role), seed)
    if role == SHAPE_DECODER:
        with torch.no_grad():
            for stage in network.blocks:
                if len(stage) and hasattr(stage[-1], "to_subdiv"):
                    stage[-1].to_subdiv.bias.fill_(TINY_SUBDIVISION_BIAS)
    network.convert_torso(torso)
    return network


def write_tiny_weights(folder: Path, model_id: str = MODEL_ID) -> Path:
    if model_id != MODEL_ID:
        raise ValueError(f"no tiny TRELLIS.2 model {model_id!r}")
    import json

    config = pipeline_config()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.json").write_text(json.dumps(config.to_dict(), indent=4))
    for role, (name, args, _torso, _seed) in NETWORKS.items():
        state = {k: v.detach().clone() for k, v in tiny_network(role).state_dict().items()}
        write_network(folder / cards.STEMS[role], name, args, state)
    return folder


def weights_digest(folder: Path) -> dict[str, str]:
    """sha256 of each network's tensors (sorted keys; name, dtype, shape, bytes): a parity
    reference made on other weights must not be compared with ours."""
    import hashlib

    from safetensors.torch import load_file

    digests = {}
    for role, stem in sorted({**cards.STEMS, SHAPE_ENCODER: SHAPE_ENCODER_STEM}.items()):
        path = folder / (stem + ".safetensors")
        if not path.exists():
            continue
        digest = hashlib.sha256()
        for key, tensor in sorted(load_file(str(path)).items()):
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
        digests[role] = digest.hexdigest()
    return digests


def write_structure_decoder(folder: Path) -> Path:
    """TRELLIS v1's structure decoder (``ckpts/ss_dec_conv3d_16l8_fp16``) -> folder."""
    decoder = v1_testing.randomize(SparseStructureDecoder(TINY_SS_DECODER), seed=3)
    with torch.no_grad():
        decoder.out_layer[2].bias.fill_(v1_testing.TINY_OCCUPANCY_BIAS)
    write_v1_network(
        folder / cards.SS_DECODER_STEM,
        NetworkSpec("SparseStructureDecoder", TINY_SS_DECODER),
        stored_state(decoder, TINY_SS_DECODER.use_fp16),
    )
    return folder


def write_shape_encoder(folder: Path, seed: int = 18) -> Path:
    """The shape SC-VAE encoder (``ckpts/shape_enc_next_dc_f16c32_fp16``) -> folder."""
    name, args = "FlexiDualGridVaeEncoder", TINY_SHAPE_ENCODER
    network = v1_testing.randomize(build_network(name, args, SHAPE_ENCODER), seed)
    network.convert_torso(torch.float16)
    state = {k: v.detach().clone() for k, v in network.state_dict().items()}
    write_network(folder / SHAPE_ENCODER_STEM, name, args, state)
    return folder


def write_dinov3(folder: Path, seed: int = 5) -> Path:
    """``config.json`` + ``model.safetensors`` of a random transformers-format DINOv3 ViT."""
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    with torch.random.fork_rng():  # transformers initialises from the global generator
        torch.manual_seed(seed)
        model = DINOv3ViTModel(DINOv3ViTConfig(**TINY_DINOV3))
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def write_tiny_components(folder: Path, model_id: str = MODEL_ID) -> dict[str, Path]:
    if model_id != MODEL_ID:
        raise ValueError(f"no tiny TRELLIS.2 model {model_id!r}")
    return {
        "decoders": write_structure_decoder(folder / "decoders"),
        "dinov3": write_dinov3(folder / "dinov3"),
        "encoder": write_shape_encoder(folder / "encoder"),
    }
