"""How many field points TripoSR's decoder takes per call: large for speed, bounded by memory.

The chunk size does not change the field (every point is sampled and decoded on its own; a test
checks the density grid is bit-identical for 8k and 262k chunks), so it is purely a speed /
memory trade. Upstream's 8192 leaves a GPU mostly idle: a 256^3 grid is 2048 decoder calls.
The product default is :data:`DEFAULT_CHUNK` (the benchmark's headline size); on CUDA it is cut
to what fits in a share of the device's free memory, estimated from the network's widths.
"""

from __future__ import annotations

import torch

from backend.models.triposr.config import TripoSRConfig

DEFAULT_CHUNK = 1 << 18  # 262144 points: ~0.6 GB of transient memory at the official widths
MIN_CHUNK = 4096
# Largest share of the free device memory one chunk's transients may take: the rest is for the
# grid itself, the colour bake that follows and other programs' growth.
MEMORY_SHARE = 0.5
# Allocator rounding, and temporaries the count below does not name (e.g. grid_sample's).
SAFETY = 1.5


def bytes_per_point(config: TripoSRConfig) -> int:
    """Estimated peak transient bytes per point of one float32 field-query chunk.

    Live at the peak: the point and its three plane coordinates, grid_sample's output and its
    plane-major copy (3 * channels each), the decoder's input and two hidden activations, and
    the four raw outputs with their float copies.
    """
    features = 3 * config.triplane_channels
    floats = 3 + 6 + 2 * features + 2 * config.decoder_neurons + 4 + 4
    return int(4 * floats * SAFETY)


def chunk_for_memory(requested: int, config: TripoSRConfig, available_bytes: int | None) -> int:
    """``requested`` points per call (0: as many as fit), cut to fit ``available_bytes``.

    ``available_bytes`` None means no known limit (CPU): the request stands, 0 stays 0.
    The result is a multiple of :data:`MIN_CHUNK` when cut, and never below it.
    """
    if available_bytes is None:
        return requested
    fits = int(available_bytes * MEMORY_SHARE) // bytes_per_point(config)
    fits = max(MIN_CHUNK, fits // MIN_CHUNK * MIN_CHUNK)
    return fits if requested <= 0 else min(requested, fits)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device, counting what torch's cache holds but does not use;
    None elsewhere."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


def fit_chunk(requested: int, config: TripoSRConfig, device: torch.device) -> int:
    """The chunk a run on ``device`` uses for a requested ``chunk_size``."""
    return chunk_for_memory(requested, config, available_bytes(device))
