"""TRELLIS.2's guidance: g pos + (1 - g) neg, the interval, CFG rescale's two std forms."""

from __future__ import annotations

import torch

from backend.models.trellis2.sampler import (
    FlowEulerGuidanceIntervalSampler,
    Trellis2SamplerSettings,
    forward_count,
)


class Linear:
    """v = a x + b c (c the condition's mean), counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 0.5 * x + cond.mean()


def test_guidance_form_and_rescale_match_the_formulas() -> None:
    sampler = FlowEulerGuidanceIntervalSampler(sigma_min=1e-5)
    x = torch.randn(1, 2, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    cond, neg = torch.full((1, 4, 2), 2.0), torch.zeros(1, 4, 2)
    model = Linear()
    settings = Trellis2SamplerSettings(4, 3.0, 0.0, (0.0, 1.0), 1.0)
    v = sampler.velocity(model, x, 0.5, cond, neg, settings)
    pos, negative = 0.5 * x + 2.0, 0.5 * x
    torch.testing.assert_close(v, 3.0 * pos - 2.0 * negative)  # not v1's (1 + s) pos - s neg
    rescaled = sampler.velocity(model, x, 0.5, cond, neg, Trellis2SamplerSettings(4, 3.0, 0.7))
    s, t = 1e-5, 0.5
    x0_pos = (1 - s) * x - (s + (1 - s) * t) * pos
    x0_cfg = (1 - s) * x - (s + (1 - s) * t) * v
    ratio = x0_pos.std(dim=[1, 2, 3, 4], keepdim=True) / x0_cfg.std(dim=[1, 2, 3, 4], keepdim=True)
    x0 = 0.7 * x0_cfg * ratio + 0.3 * x0_cfg
    torch.testing.assert_close(rescaled, ((1 - s) * x - x0) / (s + (1 - s) * t))
    sparse = sampler.velocity(model, x[0, 0], 0.5, cond, neg, Trellis2SamplerSettings(4, 3.0, 0.7))
    population = sampler._std(x[0, 0], sparse=True)
    torch.testing.assert_close(population, x[0, 0].std(unbiased=False))
    # Bessel's correction cancels in the ratio: one sparse element rescales like a dense sample.
    torch.testing.assert_close(sparse, rescaled[0, 0])


def test_outside_the_interval_one_conditional_call() -> None:
    sampler = FlowEulerGuidanceIntervalSampler()
    model = Linear()
    x = torch.zeros(1, 1, 2, 2, 2)
    settings = Trellis2SamplerSettings(12, 1.0, 0.0, (0.6, 0.9), 3.0)
    sampler.sample(model, x, torch.ones(1, 2, 1), torch.zeros(1, 2, 1), settings)
    assert model.calls == forward_count(settings) == 12  # g = 1: never a negative pass
    guided = Trellis2SamplerSettings(12, 7.5, 0.5, (0.6, 1.0), 3.0)
    assert 12 < forward_count(guided) < 24
