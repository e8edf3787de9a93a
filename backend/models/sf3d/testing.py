"""Tiny random SF3D models in the official layout, for tests and ``--tiny`` benchmark runs.

:func:`write_tiny_weights` writes ``config.yaml`` + ``model.safetensors`` exactly as
``stabilityai/stable-fast-3d`` lays them out, so they go through the production loader; its
weights are the ones upstream's parity outputs were recorded on (``randomize_weights`` with
seed 7, tests/data/sf3d/parity_tiny.npz). :data:`TINY_PARAMETERS` is a request that runs on a
CPU in well under a second. Production code never imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from backend.models.sf3d.config import EXPECTED_CLASSES, config_from_dict
from backend.models.sf3d.loading import save_checkpoint
from backend.models.sf3d.network import SF3DNetwork

MODEL_ID = "sf3d"
TINY_SEED = 7  # the weights upstream's parity outputs were recorded on

TINY_PARAMETERS: dict[str, dict[str, Any]] = {
    MODEL_ID: {"isosurface_resolution": 16, "chunk_size": 1024},
}


def tiny_config_dict() -> dict[str, Any]:
    """A few-kB SF3D in the official config.yaml layout (the parity reference's config).

    Every part keeps its structure (camera modulation, two-stream blocks, pixel shuffle, all
    heads, both CLIP towers); only widths, depths and grid sizes shrink. The DINOv2 grid (5x5
    positions, 4x4 patches from a 56 px input) exercises the position-embedding resize.
    """
    dec_heads = [
        {"name": "density", "out_channels": 1, "out_bias": -1.0, "n_hidden_layers": 2,
         "output_activation": "trunc_exp"},
        {"name": "features", "out_channels": 3, "n_hidden_layers": 3,
         "output_activation": "sigmoid"},
        {"name": "perturb_normal", "out_channels": 3, "n_hidden_layers": 3,
         "output_activation": "normalize_channel_last"},
        {"name": "vertex_offset", "out_channels": 3, "n_hidden_layers": 2},
    ]
    material_head = {"out_channels": 1, "n_hidden_layers": 3, "output_activation": "linear",
                     "add_to_decoder_features": True, "output_bias": 1.0, "shape": [-1, 1, 1]}
    return {
        "cond_image_size": 56, "isosurface_resolution": 16, "isosurface_threshold": 1.0,
        "radius": 0.87, "background_color": [0.5, 0.5, 0.5], "default_fovy_deg": 40.0,
        "default_distance": 1.6,
        "camera_embedder_cls": EXPECTED_CLASSES["camera_embedder_cls"],
        "camera_embedder": {"in_channels": 25, "out_channels": 16,
                            "conditions": ["c2w_cond", "intrinsic_normed_cond"]},
        "image_tokenizer_cls": EXPECTED_CLASSES["image_tokenizer_cls"],
        "image_tokenizer": {"pretrained_model_name_or_path": "tiny", "width": 56, "height": 56,
                            "modulation_cond_dim": 16,
                            "dino": {"hidden_size": 32, "num_hidden_layers": 2,
                                     "num_attention_heads": 2, "image_size": 70}},
        "tokenizer_cls": EXPECTED_CLASSES["tokenizer_cls"],
        "tokenizer": {"plane_size": 8, "num_channels": 32},
        "backbone_cls": EXPECTED_CLASSES["backbone_cls"],
        "backbone": {"num_attention_heads": 2, "attention_head_dim": 16,
                     "raw_triplane_channels": 32, "triplane_channels": 32,
                     "raw_image_channels": 32, "num_latents": 8, "num_blocks": 2,
                     "num_basic_blocks": 1, "norm_num_groups": 8, "cross_attention_dim": 32},
        "post_processor_cls": EXPECTED_CLASSES["post_processor_cls"],
        "post_processor": {"in_channels": 32, "out_channels": 8, "scale_factor": 2,
                           "conv_layers": 2},
        "decoder_cls": EXPECTED_CLASSES["decoder_cls"],
        "decoder": {"in_channels": 24, "n_neurons": 16, "activation": "silu",
                    "heads": dec_heads},
        "image_estimator_cls": EXPECTED_CLASSES["image_estimator_cls"],
        "image_estimator": {
            "model": "tiny-clip", "distribution": "beta", "distribution_eval": "mode",
            "hidden_features": 16,
            "clip": {"embed_dim": 16, "vision_width": 32, "vision_layers": 1,
                     "vision_patch_size": 32, "image_size": 224, "text_width": 16,
                     "text_layers": 1, "text_heads": 2, "context_length": 8,
                     "vocab_size": 64, "head_width": 16},
            "heads": [{"name": "roughness", **material_head},
                      {"name": "metallic", **material_head}],
        },
        "global_estimator_cls": EXPECTED_CLASSES["global_estimator_cls"],
        "global_estimator": {"triplane_features": 32, "hidden_features": 16,
                             "heads": [{"name": "sg_amplitudes", "out_channels": 24,
                                        "n_hidden_layers": 3, "output_activation": "softplus",
                                        "output_bias": 1.0, "shape": [-1, 24, 1]}]},
    }


def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    """Fill every float tensor but ``bbox`` with seeded Gaussian noise.

    Scaled by 1/sqrt(fan-in) (all but the first dimension) so activations stay finite through
    the deep stacks; vectors and scalars get std 0.5 so zero-initialised modulations and norms
    take part too.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and name != "bbox":
                fan_in = max(tensor[0].numel(), 1) if tensor.ndim > 1 else 0
                scale = 0.5 if tensor.ndim <= 1 else 1.0 / fan_in**0.5
                noise = torch.randn(tensor.shape, generator=generator) * scale
                tensor.copy_(noise.to(tensor.dtype))


def write_tiny_weights(folder: Path, model_id: str = MODEL_ID) -> Path:
    """Write a tiny random SF3D under ``folder`` in the official layout; its weights dir."""
    if model_id != MODEL_ID:
        raise ValueError(f"the sf3d family has no model {model_id!r}")
    raw = tiny_config_dict()
    model = SF3DNetwork(config_from_dict(raw))
    randomize_weights(model, seed=TINY_SEED)
    weights_dir = Path(folder) / model_id
    save_checkpoint(model, weights_dir, OmegaConf.to_yaml(OmegaConf.create(raw)))
    return weights_dir
