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

Both hold a ``ConditionCache`` (``backend.models.trellis.condition``): each condition tensor the
sampler passes (the same objects at every step) is prepared once per velocity object -- one
per sampling run -- with every block's cross-attention keys/values, and the constant cross
attention of the zeros negative; with ``sparse.fastpath`` off the tensors go through as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from backend.models.sparse import SparseTensor
from backend.models.trellis.condition import ConditionCache


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
        self.conditions = ConditionCache(flow)

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self.flow(x, t, self.conditions(cond))

    def many(self, x: Tensor, t: Tensor, conds: Tensor) -> Tensor:
        """x (1, ...), t (k,), conds (k, L, C) -> (k, 1, ...)."""
        if x.shape[0] != 1:
            raise ValueError(f"batched guidance needs a single latent, got a batch of {x.shape[0]}")
        k = conds.shape[0]
        return self.flow(x.expand(k, *x.shape[1:]), t, self.conditions(conds)).unsqueeze(1)


class SparseFlowVelocity:
    """The structured-latent flow on one sample's fixed voxels: x is its features (N, C)."""

    def __init__(self, flow: nn.Module, coords: Tensor) -> None:
        if coords.shape[0] and int(coords[:, 0].max()) != 0:
            raise ValueError("SparseFlowVelocity takes the voxels of one sample (batch 0)")
        self.flow = flow
        self.coords = coords
        self.conditions = ConditionCache(flow)
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
        return self.flow(self.template(1, x), t, self.conditions(cond)).feats

    def many(self, x: Tensor, t: Tensor, conds: Tensor) -> Tensor:
        """x (N, C), t (k,), conds (k, L, C) -> (k, N, C_out)."""
        k = conds.shape[0]
        feats = x.repeat(k, 1) if k > 1 else x
        out = self.flow(self.template(k, feats), t, self.conditions(conds)).feats
        return out.view(k, x.shape[0], -1)


class GraphedVelocity:
    """A batchable velocity replayed from CUDA graphs, one per input shape (opt-in, CUDA only).

    The sampler calls the flow 25-50 times on inputs of the same shapes, so each shape is run
    eagerly twice on a side stream (which also builds every cached index structure outside the
    capture), captured once, then replayed with the inputs copied into its static buffers. The
    replay launches no Python and does no host round trip; the result is cloned out of the
    graph's pool. Each captured shape keeps its own activation pool (more VRAM)."""

    def __init__(self, velocity: DenseFlowVelocity | SparseFlowVelocity) -> None:
        self.velocity = velocity
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[Tensor], Tensor]] = {}

    def __call__(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        return self._replay(self.velocity.__call__, "one", x, t, cond)

    def many(self, x: Tensor, t: Tensor, conds: Tensor) -> Tensor:
        return self._replay(self.velocity.many, "many", x, t, conds)

    def _replay(self, run: Callable, kind: str, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        key = (kind, *(tuple(v.shape) for v in (x, t, cond)), x.dtype, cond.dtype)
        entry = self._graphs.get(key)
        if entry is None:
            static = [x.clone(), t.clone(), cond.clone()]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    run(*static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = run(*static)
            entry = (graph, static, out)
            self._graphs[key] = entry
        graph, static, out = entry
        for buffer, value in zip(static, (x, t, cond), strict=True):
            buffer.copy_(value)
        graph.replay()
        return out.clone()
