"""TRELLIS.2's Euler flow sampler: guidance interval, its CFG form, and CFG rescale.

Upstream: ``trellis2/pipelines/samplers/{flow_euler,classifier_free_guidance_mixin,
guidance_interval_mixin}.py``. Differences from TRELLIS v1 (``backend.models.trellis.sampler``):

- guidance is ``g * v_pos + (1 - g) * v_neg`` (g = 1: the conditional pass alone, g = 0: the
  unconditional one alone; one network call in both cases);
- outside the interval ``[lo, hi]`` (checked on the rescaled t) g is 1;
- CFG rescale r > 0: with ``x0(v) = (1 - s) x_t - (s + (1 - s) t) v`` (s = sigma_min), the
  guided x0 is rescaled to the conditional x0's standard deviation and blended,
  ``x0 = r x0_cfg (std_pos / std_cfg) + (1 - r) x0_cfg``, then turned back into a velocity.
  Dense latents take ``torch.std`` over all but the batch axis (unbiased, Bessel's n - 1);
  sparse ones upstream's ``VarLenTensor.std``: ``sqrt(E[x^2] - E[x]^2)`` over all the
  element's values (population). Only the ratio of two such deviations enters, so the n - 1
  cancels: our one-element sparse samples rescale exactly as a dense sample would.
- the time grid and the Euler update are v1's (``time_pairs``); the network sees ``1000 t``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from backend.models.trellis.sampler import time_pairs
from backend.models.trellis2.sampler_settings import Trellis2SamplerSettings

Velocity = Callable[[Tensor, Tensor, Tensor], Tensor]  # (x, 1000 t (B,), cond) -> v
StepCallback = Callable[[int, int], None]


def guidance_at(settings: Trellis2SamplerSettings, t: float) -> float:
    low, high = settings.guidance_interval
    return settings.guidance_strength if low <= t <= high else 1.0


def forward_count(settings: Trellis2SamplerSettings) -> int:
    """Network calls one stage makes."""
    return sum(
        1 if guidance_at(settings, t) in (0.0, 1.0) else 2
        for t, _ in time_pairs(settings.steps, settings.rescale_t)
    )


class FlowEulerGuidanceIntervalSampler:
    def __init__(self, sigma_min: float = 1e-5) -> None:
        self.sigma_min = sigma_min

    def _to_x0(self, x: Tensor, t: float, v: Tensor) -> Tensor:
        s = self.sigma_min
        return (1 - s) * x - (s + (1 - s) * t) * v

    def _to_velocity(self, x: Tensor, t: float, x0: Tensor) -> Tensor:
        s = self.sigma_min
        return ((1 - s) * x - x0) / (s + (1 - s) * t)

    def _std(self, x: Tensor, sparse: bool) -> Tensor:
        if sparse:
            mean = x.mean()
            return ((x * x).mean() - mean * mean).sqrt()
        return x.std(dim=list(range(1, x.dim())), keepdim=True)

    def velocity(
        self,
        model: Velocity,
        x: Tensor,
        t: float,
        cond: Tensor,
        neg_cond: Tensor,
        settings: Trellis2SamplerSettings,
        sparse: bool = False,
    ) -> Tensor:
        batch = x.shape[0] if not sparse else 1
        t_model = torch.full((batch,), 1000 * t, device=x.device, dtype=torch.float32)
        g = guidance_at(settings, t)
        if g == 1:
            return model(x, t_model, cond)
        if g == 0:
            return model(x, t_model, neg_cond)
        v_pos = model(x, t_model, cond)
        v_neg = model(x, t_model, neg_cond)
        v = g * v_pos + (1 - g) * v_neg
        rescale = settings.guidance_rescale
        if rescale > 0:
            x0_pos, x0_cfg = self._to_x0(x, t, v_pos), self._to_x0(x, t, v)
            ratio = self._std(x0_pos, sparse) / self._std(x0_cfg, sparse)
            x0 = rescale * x0_cfg * ratio + (1 - rescale) * x0_cfg
            v = self._to_velocity(x, t, x0)
        return v

    @torch.no_grad()
    def sample(
        self,
        model: Velocity,
        noise: Tensor,
        cond: Tensor,
        neg_cond: Tensor,
        settings: Trellis2SamplerSettings,
        sparse: bool = False,
        on_step: StepCallback | None = None,
    ) -> Tensor:
        """Integrate from ``noise`` (t = 1) to t = 0; ``on_step(i, steps)`` before step i and
        after the last."""
        x = noise
        pairs = time_pairs(settings.steps, settings.rescale_t)
        for index, (t, t_prev) in enumerate(pairs):
            if on_step is not None:
                on_step(index, len(pairs))
            x = x - (t - t_prev) * self.velocity(model, x, t, cond, neg_cond, settings, sparse)
        if on_step is not None:
            on_step(len(pairs), len(pairs))
        return x
