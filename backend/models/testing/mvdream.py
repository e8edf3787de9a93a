"""MVDream checkpoints with seeded random weights in the official ``.pt`` layout.

Every tensor is a pure function of its checkpoint key (:func:`seeded_tensor`), so the file our
tests write from a key manifest holds exactly the weights the upstream reference run used
(tests/data/mvdream/*_manifest.json lists the keys and shapes upstream's modules have).
Noise-schedule buffers are computed, as upstream registers them.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

from backend.models.mvdream.config import MVDreamConfig
from backend.models.mvdream.sampler import alphas_cumprod


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
