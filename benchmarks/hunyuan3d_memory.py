"""Memory of Hunyuan3D-2's octree volume decoding, accounted on the CPU at full size.

What ``benchmarks/hunyuan3d.py`` runs on a GPU (the full-size random VAE with the smooth field
of its docstring, the same seed, resolution and chunk), replayed without one:

- the grid logic of :func:`decode_hierarchical` (masks, dilations, point lists, the fp32 grids)
  runs on the CPU at full resolution, the decoder's field computed in closed form (with the
  residual branches zeroed it is ``output_proj(ln_post(query_proj(xyz)))``, whose LayerNorm of a
  linear map of xyz reduces to a ratio of a linear and the root of a quadratic form);
- the decoder's own per-chunk transient (activations of one query chunk) is measured on the
  meta device at the model dtype, with attention counted as a fused kernel (flash / memory-
  efficient attention on CUDA holds no score matrix);
- :class:`benchmarks.live_memory.LiveBytes` adds both up: the peak of live tensor bytes above
  what was allocated before decoding, i.e. ``max_memory_allocated`` minus the resident weights.

    .venv/backend/bin/python benchmarks/hunyuan3d_memory.py --chunk 65536
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F  # noqa: N812

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.models.hunyuan3d.config import VaeConfig, parse_shape_config  # noqa: E402
from backend.models.hunyuan3d.loading import build_networks  # noqa: E402
from backend.models.hunyuan3d.testing import _random_like  # noqa: E402
from backend.models.hunyuan3d.vae import FourierEmbedder, OccupancyDecoder  # noqa: E402
from backend.models.hunyuan3d.volume import Box, decode_hierarchical, level_resolutions  # noqa: E402
from benchmarks.hunyuan3d import full_config  # noqa: E402
from benchmarks.live_memory import LiveBytes  # noqa: E402

MB = 2**20


def benchmark_field_weights(raw: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """The geo decoder's query_proj / ln_post / output_proj weights the benchmark writes:
    the same generator draws (DiT first, then the VAE), smoothed, stored as fp16."""
    generator = torch.Generator().manual_seed(seed)
    dit, vae, _ = build_networks(parse_shape_config(raw))
    for key, value in dit.state_dict().items():
        _random_like(key, value, generator)  # advance the generator as random_state does
    wanted = ("geo_decoder.query_proj", "geo_decoder.ln_post", "geo_decoder.output_proj")
    kept = {}
    for key, value in vae.state_dict().items():
        tensor = _random_like(key, value, generator)
        if key.startswith(wanted):
            kept[key.removeprefix("geo_decoder.")] = tensor
    kept["query_proj.weight"][:, 3:] = 0
    kept["output_proj.bias"].fill_(0.3)
    return {key: value.half().double() for key, value in kept.items()}


class ClosedFormField:
    """The smooth benchmark field at points (..., 3): w . LN(W p + b) + c, exactly, in float64."""

    def __init__(self, weights: dict[str, torch.Tensor], eps: float = 1e-5) -> None:
        w, b = weights["query_proj.weight"][:, :3], weights["query_proj.bias"]
        gain = weights["output_proj.weight"][0] * weights["ln_post.weight"]
        self.wc, self.bc = w - w.mean(0), b - b.mean()
        self.width, self.eps = w.shape[0], eps
        self.u, self.e = self.wc.T @ gain, gain @ self.bc
        self.shift = weights["output_proj.weight"][0] @ weights["ln_post.bias"]
        self.shift = self.shift + weights["output_proj.bias"][0]
        self.a, self.c = self.wc.T @ self.wc, self.wc.T @ self.bc

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        p = points.double()
        quadratic = ((p @ self.a) * p).sum(-1) + 2 * p @ self.c + self.bc @ self.bc
        variance = quadratic / self.width
        return (p @ self.u + self.e) / torch.sqrt(variance + self.eps) + self.shift


def chunk_transient(config: VaeConfig, chunk: int, dtype: torch.dtype) -> int:
    """Peak live bytes of one decoder call on ``chunk`` points (its input included)."""
    with torch.device("meta"):
        decoder = OccupancyDecoder(config, FourierEmbedder(config.num_freqs, config.include_pi))
    decoder = decoder.to(dtype)
    heads, head_dim = decoder.heads, config.width // config.heads
    keys = torch.empty((1, heads, config.num_latents, head_dim), device="meta", dtype=dtype)

    def fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **_: object) -> torch.Tensor:
        # Flash attention's output plus its float32 log-sum-exp rows.
        torch.empty(q.shape[:-1], device=q.device, dtype=torch.float32)
        return torch.empty_like(q)

    tracker = LiveBytes()
    patched = mock.patch.object(F, "scaled_dot_product_attention", fused)
    with torch.inference_mode(), patched, tracker:
        points = torch.empty((1, chunk, 3), device="meta", dtype=dtype)
        decoder(points, keys, keys.clone())
    return tracker.peak


def account(raw: dict, resolution: int, chunk: int, dtype: torch.dtype) -> dict:
    config = parse_shape_config(raw).vae
    field = ClosedFormField(benchmark_field_weights(raw))
    transients: dict[int, int] = {}
    queried: list[int] = []
    tracker = LiveBytes()

    def query(points: torch.Tensor) -> torch.Tensor:
        count = points.shape[1]
        if count not in transients:
            transients[count] = chunk_transient(config, count, dtype)
        queried.append(count)
        with tracker.reserve(transients[count]):
            with tracker.pause():
                values = field(points[0])[None]
            return values.to(dtype)

    levels = level_resolutions(resolution)
    start = time.perf_counter()
    with torch.inference_mode(), tracker:
        decode_hierarchical(query, Box(1.01, resolution), chunk, "cpu", dtype)
    return {
        "resolution": resolution,
        "levels": levels,
        "chunk": chunk,
        "dtype": str(dtype),
        "queried_points": sum(queried),
        "query_calls": len(queried),
        "chunk_transient_mb": transients.get(chunk, max(transients.values())) / MB,
        "peak_above_weights_mb": tracker.peak / MB,
        "largest_allocations": [f"{size / MB:.0f} MB {what}" for size, what in tracker.largest],
        "cpu_seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mini", "full"), default="mini")
    parser.add_argument("--variant", choices=("standard", "turbo"), default="turbo")
    parser.add_argument("--octree-resolution", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=65_536)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    raw = full_config(args.model, args.variant)
    result = account(raw, args.octree_resolution, args.chunk, torch.float16)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
