"""Flow-matching sampling schedules and the Euler loop of the Hunyuan3D-2 shape DiT.

Hunyuan3D runs time *forwards*: sigma goes from 0 (pure noise) to 1 (clean latents) and the
DiT predicts the velocity, so each Euler step is ``x += (sigma_next - sigma) * v``. The plain
variants sample ``sigma = linspace(0, 1, steps)`` (optionally shifted) and use classifier-free
guidance against an all-zero condition; the step-distilled (turbo) variants take their sigmas
from ``pcm_timesteps`` anchors of a consistency schedule; the guidance-distilled (fast, turbo)
variants get the guidance scale as an input instead of running the model twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from backend.models.hunyuan3d.config import SchedulerConfig


@dataclass(frozen=True)
class Schedule:
    """``timesteps`` (steps,) fed to the model (sigma * num_train_timesteps, model dtype
    cast later); ``deltas`` (steps,) python floats, the Euler step sizes."""

    timesteps: Tensor
    deltas: tuple[float, ...]


def flow_schedule(config: SchedulerConfig, steps: int) -> Schedule:
    """Schedule of the plain flow-matching Euler scheduler (float32 sigmas, as upstream)."""
    sigmas_np = np.linspace(0, 1, steps)
    shift = config.shift
    sigmas_np = shift * sigmas_np / (1 + (shift - 1) * sigmas_np)
    sigmas = torch.from_numpy(sigmas_np).to(torch.float32)
    timesteps = sigmas * config.num_train_timesteps
    sigmas = torch.cat([sigmas, torch.ones(1)])
    deltas = tuple((sigmas[i + 1] - sigmas[i]).item() for i in range(steps))
    return Schedule(timesteps, deltas)


def consistency_schedule(config: SchedulerConfig, steps: int) -> Schedule:
    """Schedule of the step-distilled scheduler: ``steps`` of the ``pcm_timesteps`` anchors."""
    train = config.num_train_timesteps
    all_sigmas = np.linspace(0, 1, train)
    ratio = train // config.pcm_timesteps
    anchors = (np.arange(1, config.pcm_timesteps) * ratio).round().astype(np.int64) - 1
    anchors = np.asarray([0, *anchors.tolist()])
    # float64, like the released scheduler (hy3dgen 2.0.2 keeps numpy's precision here).
    anchor_sigmas = torch.from_numpy(all_sigmas[anchors].copy())
    picks = np.floor(np.linspace(0, config.pcm_timesteps, num=steps, endpoint=False))
    sigmas = anchor_sigmas[torch.from_numpy(picks.astype(np.int64))]
    timesteps = sigmas * train
    sigmas = torch.cat([sigmas, torch.ones(1, dtype=sigmas.dtype)])
    deltas = tuple((sigmas[i + 1] - sigmas[i]).item() for i in range(steps))
    return Schedule(timesteps, deltas)


def make_schedule(config: SchedulerConfig, steps: int) -> Schedule:
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if config.consistency:
        return consistency_schedule(config, steps)
    return flow_schedule(config, steps)


Velocity = Callable[[Tensor, Tensor], Tensor]


def euler_sample(
    velocity: Velocity,
    latents: Tensor,
    schedule: Schedule,
    train_timesteps: int,
    on_step: Callable[[int], None] | None = None,
) -> Tensor:
    """Integrate ``velocity(x, t)`` over ``schedule`` from noise ``latents`` (b, n, c).

    ``velocity`` gets t (b,) in [0, 1] in the latents' dtype and returns the guided velocity.
    ``on_step(i)`` runs after step i (progress and cancellation).
    """
    for i, t in enumerate(schedule.timesteps):
        timestep = t.expand(latents.shape[0]).to(latents.dtype) / train_timesteps
        timestep = timestep.to(latents.device)
        v = velocity(latents, timestep)
        latents = (latents.float() + schedule.deltas[i] * v).to(v.dtype)
        if on_step is not None:
            on_step(i)
    return latents
