"""TripoSR's field chunk: the output does not depend on it, and the default is cut to fit memory."""

from __future__ import annotations

import numpy as np
import torch

from backend.models.triposr import chunking, pipeline
from backend.models.triposr.adapter import TripoSRAdapter
from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.loading import build_empty, load_state
from backend.models.triposr.testing import random_state


def _model(tiny: TripoSRConfig):
    model = build_empty(tiny)
    load_state(model, random_state(tiny, seed=3, scale=1.5))
    return model.eval()


def test_density_and_colour_are_identical_for_small_and_large_chunks(tiny: TripoSRConfig) -> None:
    model = _model(tiny)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    planes = pipeline.encode(model, image, torch.float32)
    upstream = pipeline.density_grid(model, planes, 48, 8192)
    for chunk in (chunking.DEFAULT_CHUNK, 0, 1000):  # 48^3 = 110592: one call, all, uneven
        assert torch.equal(pipeline.density_grid(model, planes, 48, chunk), upstream), chunk
    points = np.random.default_rng(1).uniform(-0.8, 0.8, (20_000, 3)).astype(np.float32)
    small = pipeline.make_color_field(model, planes, 8192)(points)
    assert np.array_equal(pipeline.make_color_field(model, planes, chunking.DEFAULT_CHUNK)(points),
                          small)


def test_the_product_default_is_the_large_chunk() -> None:
    card = {p.name: p.default for p in TripoSRAdapter.parameters}
    assert card["chunk_size"] == pipeline.TripoSRSettings().chunk_size == chunking.DEFAULT_CHUNK
    assert chunking.DEFAULT_CHUNK >= 1 << 18


def test_the_chunk_is_cut_to_a_share_of_free_memory() -> None:
    config = TripoSRConfig()
    per_point = chunking.bytes_per_point(config)
    # Official widths: 1-3 kB per point, so the default needs well under 1 GB.
    assert 1000 < per_point < 3000
    assert chunking.DEFAULT_CHUNK * per_point < 2**30
    # No known limit (CPU): the request stands.
    assert chunking.chunk_for_memory(chunking.DEFAULT_CHUNK, config, None) == chunking.DEFAULT_CHUNK
    # Plenty free (an H200 at rest): unchanged.
    assert chunking.chunk_for_memory(chunking.DEFAULT_CHUNK, config, 100 * 2**30) == 1 << 18
    # 200 MB free: cut to what half of it holds, in whole MIN_CHUNKs.
    cut = chunking.chunk_for_memory(chunking.DEFAULT_CHUNK, config, 200 * 2**20)
    assert cut % chunking.MIN_CHUNK == 0
    assert cut * per_point <= 100 * 2**20 < (cut + chunking.MIN_CHUNK) * per_point
    # Nearly nothing free: still a usable chunk; 0 (as many as fit) becomes what fits.
    assert chunking.chunk_for_memory(chunking.DEFAULT_CHUNK, config, 2**20) == chunking.MIN_CHUNK
    assert chunking.chunk_for_memory(0, config, 200 * 2**20) == cut
    # A smaller request than what fits is kept.
    assert chunking.chunk_for_memory(8192, config, 100 * 2**30) == 8192
    assert chunking.fit_chunk(12345, config, torch.device("cpu")) == 12345
