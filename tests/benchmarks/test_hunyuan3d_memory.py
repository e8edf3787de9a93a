"""The CPU memory accounting behind benchmarks/hunyuan3d_memory.py: the live-bytes counter,
the closed form of the benchmark's smooth field, and the occupancy decoder's per-point
transient at full size (the part of the octree decode's peak that grows with the chunk)."""

from __future__ import annotations

import torch

from backend.models.hunyuan3d.config import parse_shape_config, tiny_raw_config
from backend.models.hunyuan3d.testing import random_state, smooth_field
from backend.models.hunyuan3d.vae import FourierEmbedder, OccupancyDecoder
from benchmarks.hunyuan3d import full_config
from benchmarks.hunyuan3d_memory import ClosedFormField, chunk_transient
from benchmarks.live_memory import LiveBytes


def test_live_bytes_counts_what_is_alive_at_once() -> None:
    tracker = LiveBytes()
    with tracker:
        a = torch.zeros(1000)  # 4000 bytes
        b = torch.zeros(500, dtype=torch.float64)  # 4000 bytes
        del a
        c = torch.zeros(250)  # 1000 bytes, after a is gone
        view = b[:10]  # a view: no new storage
    assert tracker.peak == 8000
    assert tracker.current() == 5000
    del b, c, view
    assert tracker.current() == 0


def test_closed_form_field_is_the_smoothed_decoder() -> None:
    raw = tiny_raw_config("turbo")
    config = parse_shape_config(raw).vae
    state = smooth_field(random_state(raw, seed=5))
    decoder = OccupancyDecoder(config, FourierEmbedder(config.num_freqs, config.include_pi))
    prefix = "vae.geo_decoder."
    decoder.load_state_dict({k.removeprefix(prefix): v for k, v in state.items()
                             if k.startswith(prefix)})  # fmt: skip
    field = ClosedFormField({k.removeprefix(prefix): v.double() for k, v in state.items()
                             if k.startswith(prefix)})  # fmt: skip
    points = torch.rand((1, 2000, 3), generator=torch.Generator().manual_seed(0)) * 2 - 1
    keys = torch.randn((1, decoder.heads, config.num_latents, config.width // config.heads))
    with torch.no_grad():
        logits = decoder(points, keys, torch.randn_like(keys))
    torch.testing.assert_close(field(points[0]).float(), logits[0], rtol=1e-4, atol=1e-4)


def test_decoder_transient_is_one_wide_buffer_a_point() -> None:
    """Full-size decoder in fp16 on the meta device: per query point the MLP's hidden row
    (4 x width) and two width-rows at once; a second hidden buffer for the GELU's output
    doubled it (23 kB a point, 1.5 GB at 65536-point chunks)."""
    config = parse_shape_config(full_config("mini", "turbo")).vae
    chunk = 8192
    per_point = chunk_transient(config, chunk, torch.float16) / chunk
    assert per_point <= 2 * (config.geo_decoder_mlp_expand_ratio + 2) * config.width * 1.03
