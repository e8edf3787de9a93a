"""The density grid's fast path: the same numbers as upstream's field query, with less work.

Upstream's query (and ours before) scaled every chunk's points, indexed the three coordinate
pairs with Python lists (an index tensor copied to the device and a gather each), decoded with
out-of-place activations, and concatenated and activated the chunks afterwards. The grid path
now maps one axis to [-1, 1], samples the planes through strided views, activates in place and
writes each chunk's density straight into the grid. The result must be bit-identical to the
plain upstream arithmetic written out below, and the operator count per chunk (what bounds a
GPU at upstream's 8k-point chunks) must stay low.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as nnf

from backend.models.triposr import pipeline
from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.isosurface import grid_points, unit_grid_points
from backend.models.triposr.loading import build_empty, load_state
from backend.models.triposr.network import TripoSRNet
from backend.models.triposr.testing import random_state
from benchmarks.op_count import kernel_ops


def _model(tiny: TripoSRConfig) -> TripoSRNet:
    model = build_empty(tiny)
    load_state(model, random_state(tiny, seed=5, scale=1.5))
    return model.eval()


def _planes(model: TripoSRNet) -> torch.Tensor:
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return pipeline.encode(model, image, torch.float32)


@torch.no_grad()
def _upstream_density(model: TripoSRNet, planes: torch.Tensor, resolution: int) -> torch.Tensor:
    """Upstream's query_triplane arithmetic written plainly (unchunked: chunks change nothing)."""
    config = model.config
    points = grid_points(resolution, config.radius)
    x = (points + config.radius) / (2.0 * config.radius) * 2.0 - 1.0
    coords = torch.stack((x[..., [0, 1]], x[..., [0, 2]], x[..., [1, 2]]), dim=-3)
    sampled = nnf.grid_sample(planes, coords[:, None], align_corners=False, mode="bilinear")
    features = sampled.squeeze(2).permute(2, 0, 1).reshape(points.shape[0], -1)
    hidden = features
    linears = [m for m in model.decoder.layers if isinstance(m, torch.nn.Linear)]
    for index, linear in enumerate(linears):
        hidden = linear(hidden)
        if index < len(linears) - 1:
            hidden = nnf.silu(hidden) if config.decoder_activation == "silu" else nnf.relu(hidden)
    density = torch.exp(hidden[:, :1] + config.density_bias)
    return density.reshape((resolution,) * 3)


def test_unit_grid_is_the_scaled_grid_bit_for_bit() -> None:
    for resolution, radius in ((33, 0.87), (64, 1.0), (7, 0.5)):
        points = grid_points(resolution, radius)
        expected = (points + radius) / (2.0 * radius) * 2.0 - 1.0
        assert torch.equal(unit_grid_points(resolution, radius), expected)


def test_density_grid_equals_upstream_arithmetic_bit_for_bit(tiny: TripoSRConfig) -> None:
    model = _model(tiny)
    planes = _planes(model)
    expected = _upstream_density(model, planes, 40)
    for chunk in (8192, 1000, 0):
        assert torch.equal(pipeline.density_grid(model, planes, 40, chunk), expected), chunk
    # The colour query (mesh vertices) keeps upstream's numbers too.
    points = grid_points(40, model.config.radius)[::97]
    field = model.query(planes, points, 512)
    assert torch.equal(field["density_act"].reshape(-1), expected.reshape(-1)[::97])


def test_each_grid_chunk_runs_few_operators(tiny: TripoSRConfig) -> None:
    """Per chunk: stack of the pairs, grid_sample, the decoder's linears and in-place
    activations, one add and one in-place exp. Before (upstream's structure): +3 list
    indexings (each an index copied to the device and a gather), 4 scaling ops, the density
    cat, bias, exp and the write back, and out-of-place activations (a new buffer each)."""
    model = _model(tiny)
    planes = _planes(model)
    resolution, chunk = 32, 4096  # 8 chunks
    chunks = resolution**3 // chunk
    with torch.no_grad():
        counts = kernel_ops(lambda: pipeline.density_grid(model, planes, resolution, chunk))
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.decoder.layers)
    activations = linears - 1
    assert counts["aten::addmm"] == linears * chunks
    assert counts["aten::index"] == 0, "no list indexing (a host index copy + gather each)"
    assert counts["aten::silu"] + counts["aten::relu"] == 0, "activations run in place"
    assert counts["aten::silu_"] + counts["aten::relu_"] == activations * chunks
    per_chunk = sum(counts.values()) / chunks
    # linears + activations + stack + grid_sample + add + exp_, and the grid (a handful of
    # ops, once) spread over the chunks.
    assert per_chunk <= linears + activations + 4 + 12 / chunks, counts
