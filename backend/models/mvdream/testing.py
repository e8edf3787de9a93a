"""MVDream checkpoints with seeded random weights in the official ``.pt`` layout.

For tests and benchmarks only; production code never imports this module.
:func:`write_tiny_weights` writes a weights folder as the adapter reads it: the checkpoint
``sd-v2.1-base-4view.pt`` at the tiny size, upstream's ``sd-v2-base.yaml`` for that size
(the hub ships no config) and a byte-level CLIP tokenizer in ``tokenizer/`` (the hub ships
none either; serving builds one from open_clip's BPE table).

Every tensor is a pure function of its checkpoint key (:func:`seeded_tensor`), so the file our
tests write from a key manifest holds exactly the weights the upstream reference run used
(tests/data/mvdream/*_manifest.json lists the keys and shapes upstream's modules have).
Noise-schedule buffers are computed, as upstream registers them.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.models.mvdream.config import CHECKPOINT, CONFIG_FILE, TINY, MVDreamConfig
from backend.models.mvdream.sampler import alphas_cumprod
from backend.models.testing.clip_tokenizer import write_clip_tokenizer

# Upstream's key manifests (made by running bytedance/MVDream; see the README there).
MANIFESTS = Path(__file__).resolve().parents[3] / "tests" / "data" / "mvdream"
# A request that runs in a few seconds on a CPU: 2 DDIM steps on 32 px views, then the
# built-in inflate on a coarse grid (no second download).
TINY_PARAMETERS: dict[str, dict[str, Any]] = {
    "mvdream": {"steps": 2, "image_size": 32, "reconstructor": "inflate",
                "reconstructor_resolution": 48},
}


def write_tiny_weights(folder: Path, model_id: str = "mvdream") -> Path:
    """The tiny checkpoint, its upstream-format config and a tokenizer in ``folder``."""
    if model_id != "mvdream":
        raise KeyError(f"no MVDream model {model_id!r}; this family has mvdream")
    write_mvdream_checkpoint(MANIFESTS / "tiny_manifest.json", folder / CHECKPOINT, TINY)
    write_upstream_config(TINY, folder / CONFIG_FILE)
    write_clip_tokenizer(folder / "tokenizer")
    return folder


def seeded_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 weights for ``name``: fan-in scaled matrices, ~1 norm scales, small biases."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    values = np.asarray(rng.standard_normal(shape), dtype=np.float32)
    if len(shape) >= 2:
        values = values / np.sqrt(float(np.prod(shape[1:])))
    elif name.endswith("weight"):
        values = 1.0 + 0.1 * values
    else:
        values = 0.1 * values
    return np.asarray(values, dtype=np.float32).reshape(shape)


def schedule_buffers(config: MVDreamConfig) -> dict[str, np.ndarray]:
    """The interface's registered schedule buffers (the checkpoint carries them)."""
    betas = np.linspace(config.linear_start**0.5, config.linear_end**0.5, config.timesteps,
                        dtype=np.float64) ** 2
    cumulative = np.cumprod(1.0 - betas)
    previous = np.append(1.0, cumulative[:-1])
    posterior = betas * (1.0 - previous) / (1.0 - cumulative)
    buffers = {
        "betas": betas,
        "alphas_cumprod": cumulative,
        "alphas_cumprod_prev": previous,
        "sqrt_alphas_cumprod": np.sqrt(cumulative),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - cumulative),
        "log_one_minus_alphas_cumprod": np.log(1.0 - cumulative),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / cumulative),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / cumulative - 1),
        "posterior_variance": posterior,
        "posterior_log_variance_clipped": np.log(np.maximum(posterior, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(previous) / (1.0 - cumulative),
        "posterior_mean_coef2": (1.0 - previous) * np.sqrt(1.0 - betas) / (1.0 - cumulative),
    }
    out = {k: v.astype(np.float32) for k, v in buffers.items()}
    assert np.array_equal(out["alphas_cumprod"], alphas_cumprod(config))
    return out


def write_mvdream_checkpoint(manifest: Path, path: Path, config: MVDreamConfig) -> Path:
    """Write a ``.pt`` with every key of ``manifest`` (JSON list of name/shape/kind)."""
    entries = json.loads(manifest.read_text())
    buffers = schedule_buffers(config)
    state: dict[str, torch.Tensor] = {}
    for entry in entries:
        name, shape = entry["name"], tuple(entry["shape"])
        values = buffers[name] if entry["kind"] == "buffer" else seeded_tensor(name, shape)
        state[name] = torch.from_numpy(np.array(values, dtype=np.float32))  # keeps 0-d shapes
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def write_upstream_config(config: MVDreamConfig, path: Path) -> Path:
    """Write ``config`` as an upstream ``sd-v2-base.yaml``-style file (model.params.*)."""
    from omegaconf import OmegaConf

    unet = {
        "image_size": 32, "in_channels": config.in_channels,
        "out_channels": config.out_channels, "model_channels": config.model_channels,
        "attention_resolutions": list(config.attention_resolutions),
        "num_res_blocks": config.num_res_blocks, "channel_mult": list(config.channel_mult),
        "num_head_channels": config.num_head_channels, "use_spatial_transformer": True,
        "use_linear_in_transformer": True, "transformer_depth": 1,
        "context_dim": config.context_dim, "use_checkpoint": False, "legacy": False,
        "camera_dim": config.camera_dim,
    }
    ddconfig = {
        "double_z": True, "z_channels": config.z_channels, "resolution": 256, "in_channels": 3,
        "out_ch": 3, "ch": config.vae_ch, "ch_mult": list(config.vae_ch_mult),
        "num_res_blocks": config.vae_num_res_blocks, "attn_resolutions": [], "dropout": 0.0,
    }
    document = {"model": {"target": "mvdream.ldm.interface.LatentDiffusionInterface", "params": {
        "linear_start": config.linear_start, "linear_end": config.linear_end,
        "timesteps": config.timesteps, "scale_factor": config.scale_factor,
        "parameterization": "eps",
        "unet_config": {"target": "mvdream.ldm.modules.diffusionmodules.openaimodel."
                                  "MultiViewUNetModel", "params": unet},
        "first_stage_config": {"target": "mvdream.ldm.models.autoencoder.AutoencoderKL",
                               "params": {"embed_dim": 4, "ddconfig": ddconfig}},
        "cond_stage_config": {"target": "mvdream.ldm.modules.encoders.modules."
                                        "FrozenOpenCLIPEmbedder",
                              "params": {"freeze": True, "layer": "penultimate"}},
    }}}
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(document), path)
    return path
