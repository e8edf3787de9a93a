"""Velocity functions of TRELLIS's two flows that can run several conditions as one batch.

The guided sampler needs, per step, the velocity of the same ``x`` at the same ``t`` under
several conditions (the image(s) and the negative condition). Upstream runs them as separate
forwards; the maths of both flows is per sample (attention never crosses batch elements,
norms are per token, the modulation per sample), so stacking them as one batch changes the
result only by float rounding and halves the kernel launches and host round trips of a guided
step. A velocity object here is callable like a plain one (``v(x, t, cond)``, one condition)
and also offers ``many(x, t, conds) -> (k, *x.shape)`` for ``k`` conditions, which
``FlowEulerGuidanceIntervalSampler`` uses when it finds it.

- ``DenseFlowVelocity``: the sparse-structure flow; ``x`` (1, C, R, R, R) is expanded to k.
- ``SparseFlowVelocity``: the structured-latent flow on fixed voxels; the voxels are repeated
  as k batch elements once (``batched_coords``), so the neighbour maps, the downsampled
  coordinates and the position embedding of that batch are built at the first step and reused
  by every later one (they live in the coordinate set's cache).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from backend.models.sparse import SparseTensor


def batched_coords(coords: Tensor, copies: int) -> Tensor:
    """(N, 4) one-sample coords -> (k N, 4): the same voxels as batch elements 0..k-1."""
    repeated = coords.repeat(copies, 1)
    batch = torch.arange(copies, dtype=coords.dtype, device=coords.device)
    repeated[:, 0] = batch.repeat_interleave(coords.shape[0])
    return repeated


class DenseFlowVelocity:
    """The sparse-structure flow as a (batchable) velocity: x (1, C, R, R, R)."""

    def __init__(self, flow: nn.Module) -> None:
        self.flow = flow

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.flow(x, t, cond)

    def many(self, x: Tensor, t: Tensor, conds: Tensor) -> Tensor:
        """x (1, ...), t (k,), conds (k, L, C) -> (k, 1, ...)."""
        if x.shape[0] != 1:
            raise ValueError(f"batched guidance needs a single latent, got a batch of {x.shape[0]}")
        k = conds.shape[0]
        return self.flow(x.expand(k, *x.shape[1:]), t, conds).unsqueeze(1)


class SparseFlowVelocity:
    """The structured-latent flow on one sample's fixed voxels: x is its features (N, C)."""

    def __init__(self, flow: nn.Module, coords: Tensor) -> None:
        if coords.shape[0] and int(coords[:, 0].max()) != 0:
            raise ValueError("SparseFlowVelocity takes the voxels of one sample (batch 0)")
        self.flow = flow
        self.coords = coords
        self._templates: dict[int, SparseTensor] = {}

    def template(self, copies: int, feats: Tensor) -> SparseTensor:
        """The k-sample tensor on the repeated voxels, made once so its cache is reused."""
        template = self._templates.get(copies)
        if template is None:
            coords = self.coords if copies == 1 else batched_coords(self.coords, copies)
            template = SparseTensor(feats, coords, batch_size=copies)
            self._templates[copies] = template
        return template.replace(feats)

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.flow(self.template(1, x), t, cond).feats

    def many(self, x: Tensor, t: Tensor, conds: Tensor) -> Tensor:
        """x (N, C), t (k,), conds (k, L, C) -> (k, N, C_out)."""
        k = conds.shape[0]
        feats = x.repeat(k, 1) if k > 1 else x
        out = self.flow(self.template(k, feats), t, conds).feats
        return out.view(k, x.shape[0], -1)
