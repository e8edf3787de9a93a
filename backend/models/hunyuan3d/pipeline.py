"""Image(s) -> raw mesh with a loaded Hunyuan3D-2 shape variant, step by step.

1. condition: DINOv2 tokens of the image(s), plus the all-zero condition for guidance;
2. sample: flow-matching Euler steps from seeded noise (CPU generator, so a seed gives the same
   shape on any device, as with hy3dgen's ``torch.manual_seed`` generator);
3. decode: the ShapeVAE's latent transformer, then occupancy logits on a grid (dense, octree
   or FlashVDM's octree with adaptive key selection and, when loaded, the turbo VAE), in chunks;
4. mesh: marching cubes.
``on_event(stage, step, total)`` is called after every sampling step and decoding chunk; it is
where the adapter reports progress and raises on cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from backend.models.hunyuan3d.flashvdm import decode_flashvdm
from backend.models.hunyuan3d.key_selection import KeySelection
from backend.models.hunyuan3d.loading import ShapeModels
from backend.models.hunyuan3d.sampling import euler_sample, make_schedule
from backend.models.hunyuan3d.vae import ShapeVAE
from backend.models.hunyuan3d.volume import (
    Box,
    decode_dense,
    decode_hierarchical,
    extract_surface,
    level_resolutions,
)

EventFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ShapeSettings:
    """Sampling and decoding settings; the defaults are hy3dgen's pipeline defaults."""

    steps: int = 50
    guidance_scale: float = 5.0
    seed: int = 0
    octree_resolution: int = 384
    num_chunks: int = 8000
    bounds: float = 1.01
    mc_level: float = 0.0
    # "dense" (every grid point, hy3dgen's default), "hierarchical" (octree at the given
    # resolution) or "flashvdm" (octree with FlashVDM's snapped levels, e.g. 384 -> 380).
    decoding: str = "dense"
    # With "flashvdm": each group of nearby points attends to its own top keys (upstream's
    # enable_flashvdm default); False keeps exact attention.
    adaptive_kv: bool = True
    # Octree levels halve from octree_resolution while at least this (upstream's default).
    min_resolution: int = 63


@dataclass
class ShapeResult:
    """vertices (n, 3) float32 in the model's frame; faces (m, 3) int64; latents (1, k, c)."""

    vertices: np.ndarray
    faces: np.ndarray
    latents: Tensor
    logits: Tensor
    box: Box


def _ignore(stage: str, step: int, total: int) -> None:
    return None


class ShapePipeline:
    def __init__(self, models: ShapeModels) -> None:
        self.models = models

    def condition(self, images: Tensor, view_indices: tuple[int, ...], guided: bool) -> Tensor:
        """images (1, 3, s, s) or (1, v, 3, s, s) in [-1, 1] -> condition tokens (1|2, m, d)."""
        encoder = self.models.conditioner.main_image_encoder
        images = images.to(self.models.device, self.models.dtype)
        cond = encoder(images, view_indices)
        if guided:
            cond = torch.cat([cond, encoder.unconditional(cond.shape[0], len(view_indices))])
        return cond

    def initial_latents(self, seed: int) -> Tensor:
        """Seeded noise (1, num_latents, embed_dim), drawn on the CPU in the model dtype."""
        vae = self.models.config.vae
        generator = torch.Generator("cpu").manual_seed(seed)
        noise = torch.randn(
            (1, vae.num_latents, vae.embed_dim), generator=generator, dtype=self.models.dtype
        )
        return noise.to(self.models.device)

    def sample(self, cond: Tensor, settings: ShapeSettings, on_event: EventFn = _ignore) -> Tensor:
        """Euler flow matching from seeded noise -> latents (1, num_latents, embed_dim)."""
        models = self.models
        guided = not models.config.dit.guidance_embed
        guidance = None
        if not guided:
            guidance = torch.full((1,), settings.guidance_scale, device=models.device)
            guidance = guidance.to(models.dtype)
        schedule = make_schedule(models.config.scheduler, settings.steps)

        def velocity(x: Tensor, t: Tensor) -> Tensor:
            if not guided:
                return models.dit(x, t, cond, guidance=guidance)
            both = models.dit(torch.cat([x, x]), torch.cat([t, t]), cond)
            conditional, unconditional = both.chunk(2)
            return unconditional + settings.guidance_scale * (conditional - unconditional)

        latents = self.initial_latents(settings.seed)
        steps = settings.steps
        return euler_sample(
            velocity,
            latents,
            schedule,
            models.config.scheduler.num_train_timesteps,
            on_step=lambda i: on_event("sampling", i + 1, steps),
        )

    def decoding_vae(self, settings: ShapeSettings) -> ShapeVAE:
        """The VAE that decodes: the turbo VAE for FlashVDM decoding when it is loaded (it was
        distilled for that decode), else the variant's own."""
        if settings.decoding == "flashvdm" and self.models.turbo_vae is not None:
            return self.models.turbo_vae
        return self.models.vae

    def decode(
        self, latents: Tensor, settings: ShapeSettings, on_event: EventFn = _ignore
    ) -> tuple[Tensor, Box]:
        """Latents -> occupancy logits (r+1,)^3 float32 and the box they cover."""
        vae = self.decoding_vae(settings)
        keys, values = vae.prepare_queries(vae.decode_latents(latents))

        def query(points: Tensor, selection: KeySelection | None = None) -> Tensor:
            return vae.geo_decoder(points, keys, values, selection)

        box = Box(settings.bounds, settings.octree_resolution)
        device, dtype = self.models.device, self.models.dtype

        def on_chunk(done: int, total: int) -> None:
            on_event("decoding", done, total)

        if settings.decoding == "dense":
            return decode_dense(query, box, settings.num_chunks, device, dtype, on_chunk), box
        if settings.decoding == "hierarchical":
            levels = level_resolutions(box.resolution, settings.min_resolution)
            return decode_hierarchical(
                query, box, settings.num_chunks, device, dtype, settings.mc_level, levels, on_chunk
            )
        if settings.decoding == "flashvdm":
            return decode_flashvdm(
                query, box, settings.num_chunks, device, dtype, settings.mc_level,
                adaptive=settings.adaptive_kv, min_resolution=settings.min_resolution,
                on_chunk=on_chunk,
            )
        raise ValueError(f"unknown decoding {settings.decoding!r}")

    @torch.inference_mode()
    def __call__(
        self,
        images: Tensor,
        view_indices: tuple[int, ...],
        settings: ShapeSettings,
        on_event: EventFn = _ignore,
    ) -> ShapeResult:
        guided = not self.models.config.dit.guidance_embed
        on_event("conditioning", 0, 1)
        cond = self.condition(images, view_indices, guided)
        on_event("conditioning", 1, 1)
        latents = self.sample(cond, settings, on_event)
        logits, box = self.decode(latents, settings, on_event)
        on_event("meshing", 0, 1)
        vertices, faces = extract_surface(logits, box, settings.mc_level)
        on_event("meshing", 1, 1)
        return ShapeResult(vertices, faces, latents, logits, box)
