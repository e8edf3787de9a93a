"""TRELLIS's ``FlowEulerGuidanceIntervalSampler``: Euler steps of a rectified flow with CFG.

- Time grid: ``t = linspace(1, 0, steps + 1)`` rescaled by ``r t / (1 + (r - 1) t)``
  (``rescale_t``), stepped in pairs (t, t_prev): ``x <- x - (t - t_prev) v``.
- The network is called with ``1000 t`` and predicts the velocity v.
- Guidance only while ``cfg_interval[0] <= t <= cfg_interval[1]`` (on the rescaled t), in
  TRELLIS v1's form ``v = (1 + s) v_cond - s v_uncond``; outside the interval one conditional
  pass. Upstream makes the two predictions with two forward passes; a velocity that offers
  ``many(x, t (k,), conds (k, L, C)) -> (k, *x.shape)`` (``backend.models.trellis.velocity``)
  gets them as one batch of up to ``max_batch`` conditions instead (the same maths per sample:
  equal up to float rounding), a plain callable still gets one pass per condition.
- Several images (upstream ``inject_sampler_multi_image``): *stochastic* conditions step i on
  image ``i mod n`` alone (CFG as usual); *multidiffusion* averages the conditional
  predictions of all n images at every step, then applies CFG with one unconditional pass.

``sigma_min`` only enters upstream's x0 bookkeeping, never the update, so it has no effect here.
The sampler works on plain tensors: the SLat stage passes its features and wraps the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

MULTI_IMAGE_MODES = ("stochastic", "multidiffusion")
# velocity(x, t (B,) = 1000 t float32, cond) -> v, shaped like x
Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, int], None]  # (steps done, total), called before each step too


@dataclass(frozen=True)
class SamplerSettings:
    """One stage's sampling: steps, guidance strength and interval, time rescale."""

    steps: int
    cfg_strength: float
    cfg_interval: tuple[float, float] = (0.5, 1.0)
    rescale_t: float = 3.0


def time_pairs(steps: int, rescale_t: float) -> list[tuple[float, float]]:
    """The (t, t_prev) of each step, from 1 down to 0, as upstream computes them (float64)."""
    t_seq = np.linspace(1, 0, steps + 1)
    t_seq = rescale_t * t_seq / (1 + (rescale_t - 1) * t_seq)
    return [(float(t_seq[i]), float(t_seq[i + 1])) for i in range(steps)]


def guided_steps(settings: SamplerSettings) -> int:
    """How many steps fall inside the guidance interval."""
    low, high = settings.cfg_interval
    return sum(low <= t <= high for t, _ in time_pairs(settings.steps, settings.rescale_t))


def forward_count(settings: SamplerSettings, images: int = 1, mode: str = "stochastic") -> int:
    """Network calls one stage makes (what the progress bar and the benchmark count)."""
    guided = guided_steps(settings)
    plain = settings.steps - guided
    if images > 1 and mode == "multidiffusion":
        return guided * (images + 1) + plain * images
    return 2 * guided + plain


class FlowEulerGuidanceIntervalSampler:
    def __init__(self, sigma_min: float = 1e-5, max_batch: int = 2) -> None:
        self.sigma_min = sigma_min  # kept for the config round trip; unused by the update
        # Conditions per forward for a batchable velocity (1: upstream's separate passes);
        # bounded because each one more holds a whole copy of the activations.
        self.max_batch = max_batch

    @torch.no_grad()
    def sample(
        self,
        velocity: Velocity,
        noise: torch.Tensor,
        cond: torch.Tensor,
        neg_cond: torch.Tensor,
        settings: SamplerSettings,
        multi_image: str = "stochastic",
        on_step: StepCallback | None = None,
    ) -> torch.Tensor:
        """Integrate from ``noise`` (t = 1) to t = 0 and return the sample.

        cond (n, L, C): one condition per image (n = 1 for a single image or a prompt);
        neg_cond (1, L, C); ``on_step(i, steps)`` runs before step i and after the last."""
        images = cond.shape[0]
        if multi_image not in MULTI_IMAGE_MODES:
            raise ValueError(f"unknown multi-image mode {multi_image!r}")
        if images > 1 and multi_image == "stochastic" and images > settings.steps:
            log.warning(
                "%d images but %d steps: some images never condition a step", images, settings.steps
            )
        x = noise
        pairs = time_pairs(settings.steps, settings.rescale_t)
        # The same condition tensor objects at every step (sliced and stacked once), so a
        # velocity can prepare each once per run (``backend.models.trellis.condition``).
        singles = [cond[i : i + 1] for i in range(images)]
        stacks: dict[tuple[int, ...], torch.Tensor] = {}
        for index, (t, t_prev) in enumerate(pairs):
            if on_step is not None:
                on_step(index, len(pairs))
            if images > 1 and multi_image == "multidiffusion":
                conds = singles
            else:
                conds = [singles[index % images]]
            v = self._velocity(velocity, x, t, conds, neg_cond, settings, self.max_batch, stacks)
            x = x - (t - t_prev) * v
        if on_step is not None:
            on_step(len(pairs), len(pairs))
        return x

    @staticmethod
    def _velocity(
        velocity: Velocity,
        x: torch.Tensor,
        t: float,
        conds: list[torch.Tensor],
        neg_cond: torch.Tensor,
        settings: SamplerSettings,
        max_batch: int = 1,
        stacks: dict[tuple[int, ...], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        low, high = settings.cfg_interval
        guided = low <= t <= high
        wanted = [*conds, neg_cond] if guided else list(conds)
        predictions = _predictions(velocity, x, 1000 * t, wanted, max_batch, stacks)
        negative = predictions.pop() if guided else None
        # Upstream sums from 0 and divides only when averaging several images.
        pred = predictions[0] if len(predictions) == 1 else sum(predictions) / len(predictions)
        if negative is not None:
            strength = settings.cfg_strength
            return (1 + strength) * pred - strength * negative
        return pred


def _predictions(
    velocity: Velocity,
    x: torch.Tensor,
    t: float,
    conds: list[torch.Tensor],
    max_batch: int,
    stacks: dict[tuple[int, ...], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """The velocity of ``x`` at network time ``t`` under each condition (1, L, C), in order;
    ``stacks`` memoises the stacked groups (by the members' ids, alive for the whole run)."""
    many = getattr(velocity, "many", None)
    if many is None or max_batch < 2:
        # torch.full, not torch.tensor(list): a fill kernel, no host-to-device copy (a sync).
        t_model = torch.full((_batch(x),), t, device=x.device, dtype=torch.float32)
        return [velocity(x, t_model, c) for c in conds]
    predictions: list[torch.Tensor] = []
    for start in range(0, len(conds), max_batch):
        group = conds[start : start + max_batch]
        t_model = torch.full((len(group),), t, device=x.device, dtype=torch.float32)
        if len(group) == 1:
            stacked = group[0]
        elif stacks is None:
            stacked = torch.cat(group, dim=0)
        else:
            key = tuple(id(c) for c in group)
            stacked = stacks.get(key)
            if stacked is None:
                stacked = stacks[key] = torch.cat(group, dim=0)
        predictions.extend(many(x, t_model, stacked).unbind(0))
    return predictions


def _batch(x: torch.Tensor) -> int:
    """Batch size of a dense latent (B, C, ...); sparse features (N, C) are one sample."""
    return x.shape[0] if x.dim() > 2 else 1
