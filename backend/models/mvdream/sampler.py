"""DDIM with classifier-free guidance, step for step as MVDream's (LDM's) sampler does it.

Schedule: betas linear in sqrt-space between ``linear_start`` and ``linear_end`` over 1000
steps (float64, then float32 like the model's buffers); DDIM picks every ``1000 // steps``-th
step offset by one (exactly ``steps`` of them); guidance mixes the unconditional and
conditional noise predictions of one batched UNet call (unconditional half first).
``eta`` > 0 adds the stochastic term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from backend.models.mvdream.config import MVDreamConfig

# (latents (b, c, h, w), timesteps (b,) int64) -> predicted noise, both halves guided.
NoisePredictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def alphas_cumprod(config: MVDreamConfig) -> np.ndarray:
    """(timesteps,) float32 cumulative alphas, as the checkpoint's ``alphas_cumprod`` buffer."""
    betas = np.linspace(config.linear_start**0.5, config.linear_end**0.5, config.timesteps,
                        dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas).astype(np.float32)


@dataclass(frozen=True)
class DDIMSchedule:
    """timesteps (n,) int64 in sampling order (noisy first) and their alpha products."""

    timesteps: np.ndarray
    alphas: np.ndarray  # (n,) float32, alpha-bar at each timestep, sampling order
    alphas_prev: np.ndarray  # (n,) float32, alpha-bar of the step it moves to
    sigmas: np.ndarray  # (n,) float32

    @classmethod
    def make(cls, cumulative: np.ndarray, steps: int, eta: float = 0.0) -> DDIMSchedule:
        stride = len(cumulative) // steps
        # Upstream takes arange(0, T, stride) + 1: the same as this when steps divides T
        # (50, 25, 20, ...); otherwise it runs extra steps, or indexes past T (steps = 3, 9,
        # 27, ...). We always run exactly ``steps`` steps.
        ascending = np.arange(steps) * stride + 1
        alphas = cumulative[ascending]
        prev = np.concatenate([cumulative[:1], cumulative[ascending[:-1]]])
        sigmas = eta * np.sqrt((1 - prev) / (1 - alphas) * (1 - alphas / prev))
        flip = slice(None, None, -1)
        return cls(ascending[flip].astype(np.int64), alphas[flip], prev[flip],
                   sigmas[flip].astype(np.float32))


def ddim_step(
    latents: torch.Tensor,
    noise: torch.Tensor,
    alpha: float,
    alpha_prev: float,
    sigma: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update: returns (next latents, predicted clean latents)."""
    predicted_x0 = (latents - (1.0 - alpha) ** 0.5 * noise) / alpha**0.5
    direction = (1.0 - alpha_prev - sigma**2) ** 0.5 * noise
    result = alpha_prev**0.5 * predicted_x0 + direction
    if sigma > 0:
        random = torch.randn(latents.shape, generator=generator, dtype=latents.dtype,
                             device="cpu").to(latents.device)
        result = result + sigma * random
    return result, predicted_x0


def guided_noise(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    timestep: int,
    guidance_scale: float,
) -> torch.Tensor:
    """Run ``predict`` on [uncond; cond] copies of ``latents`` and mix with ``guidance_scale``."""
    batch = latents.shape[0]
    doubled = torch.cat([latents, latents])
    times = torch.full((2 * batch,), timestep, dtype=torch.long, device=latents.device)
    uncond, cond = predict(doubled, times).chunk(2)
    return uncond + guidance_scale * (cond - uncond)
