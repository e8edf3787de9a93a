"""One sampling stage's settings, as pipeline.json's ``params`` (torch-free: the card reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trellis2SamplerSettings:
    """One stage's sampling, as pipeline.json's ``params``."""

    steps: int
    guidance_strength: float
    guidance_rescale: float = 0.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    rescale_t: float = 1.0
