"""Hunyuan3D-Paint's multi-view sampling: the paint camera set's views from one reference image.

Upstream's settings: 512 px views, 30 Euler-ancestral steps with "trailing" timesteps,
classifier-free guidance 2.0 whose unconditional half has zero prompt embeddings, zero reference
latents and reference attention silenced (scale 0). Images enter the VAE in [-1, 1]; condition
maps (normal, position) are encoded like the reference and stacked with the noisy latents.
Camera ids index the UNet's camera embedding: 12 azimuths (30 degrees apart, starting at 270)
at elevation 0 are ids 12-23 (-20 and +20 degrees: 0-11 and 24-35), 4 azimuths looking down
(90) are 40-43 and looking up (-90) 36-39. Random numbers are drawn as hy3dgen's
``HunyuanPaintPipeline`` draws them (two streams, see :func:`generate_views`), so on CPU a seed
gives its views (tests/data/hunyuan/paint_views.npz).
"""

from __future__ import annotations

import torch
from torch import Tensor

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback
from backend.models.common.device_errors import typed_device_errors
from backend.models.hunyuan3d.paint.loading import PaintModels
from shared_protocol.errors import ErrorCode, ProtocolError

STEPS = 30
GUIDANCE = 2.0
VIEW_SIZE = 512
# elevation -> (first id, azimuth bins merged into one id)
_ELEVATION_IDS = {-20: (0, 1), 0: (12, 1), 20: (24, 1), -90: (36, 3), 90: (40, 3)}


def camera_id(azimuth: float, elevation: float) -> int:
    """The camera-embedding id of a view (upstream's table)."""
    if int(elevation) not in _ELEVATION_IDS or elevation != int(elevation):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"the paint model has no camera at elevation {elevation}",
            hint=f"use one of {sorted(_ELEVATION_IDS)}",
        )
    first, merged = _ELEVATION_IDS[int(elevation)]
    return first + ((int(azimuth // 30) + 9) % 12) // merged


def encode_images(vae: torch.nn.Module, images: Tensor, generator: torch.Generator) -> Tensor:
    """images (n, h, w, 3) in [0, 1] -> scaled latents (n, 4, h/8, w/8), sampled as upstream."""
    pixels = (images.permute(0, 3, 1, 2) * 2 - 1).to(vae.dtype)
    posterior = vae.encode(pixels).latent_dist
    noise = torch.randn(
        posterior.mean.shape, generator=generator, dtype=posterior.mean.dtype
    ).to(posterior.mean.device)
    return (posterior.mean + posterior.std * noise) * vae.config.scaling_factor


def generate_views(
    models: PaintModels,
    reference: Tensor,
    normals: Tensor,
    positions: Tensor,
    cameras: list[int],
    *,
    progress: ProgressCallback,
    cancel: CancelToken,
    stage: str = "paint",
    steps: int = STEPS,
    guidance_scale: float = GUIDANCE,
    seed: int = 0,
) -> Tensor:
    """reference (s, s, 3), normals and positions (n, s, s, 3), all in [0, 1] -> the generated
    views (n, s, s, 3) in [0, 1] (float32, on the models' device)."""
    from diffusers import EulerAncestralDiscreteScheduler

    views = normals.shape[0]
    if positions.shape != normals.shape or len(cameras) != views:
        raise ValueError("one normal map, one position map and one camera per view")
    unet, vae, device, dtype = models.unet, models.vae, models.device, models.dtype
    scheduler = EulerAncestralDiscreteScheduler.from_config(
        models.scheduler_config, timestep_spacing="trailing"
    )
    scheduler.set_timesteps(steps, device=device)
    # Two random streams seeded alike, as hy3dgen draws them: the VAE posteriors sample torch's
    # global RNG (which it seeds with the seed), the initial noise and the ancestral steps its
    # pipeline generator (seeded again). Both on the CPU: a seed draws the same numbers anywhere.
    posterior = torch.Generator("cpu").manual_seed(seed)
    generator = torch.Generator("cpu").manual_seed(seed)
    with typed_device_errors("hunyuan3d-paint"):
        reference_latents = encode_images(vae, reference[None].to(device), posterior)[None]
        normal_latents = encode_images(vae, normals.to(device), posterior)[None]
        position_latents = encode_images(vae, positions.to(device), posterior)[None]
        prompt = unet.unet.learned_text_clip_gen.to(dtype)
        camera_ids = torch.tensor([cameras], device=device)
        reference_scale: float | Tensor = 1.0
        guided = guidance_scale > 1
        if guided:  # batch rows: (unconditional, conditional)
            reference_latents = torch.cat([torch.zeros_like(reference_latents), reference_latents])
            reference_scale = torch.tensor([0.0, 1.0], device=device, dtype=dtype)
            prompt = torch.cat([torch.zeros_like(prompt), prompt])
            normal_latents, position_latents = normal_latents.repeat(2, 1, 1, 1, 1), \
                position_latents.repeat(2, 1, 1, 1, 1)
            camera_ids = camera_ids.repeat(2, 1)
        features = unet.encode_reference(
            reference_latents, torch.zeros(camera_ids.shape[0], 1, dtype=torch.long, device=device)
        )
        shape = (views, 4, normal_latents.shape[-2], normal_latents.shape[-1])
        # drawn in the model's dtype as upstream does (a float16 draw is not a float32 one cast)
        latents = torch.randn(shape, generator=generator, dtype=dtype).to(device)
        latents = latents * scheduler.init_noise_sigma
        for step, timestep in enumerate(scheduler.timesteps):
            cancel.raise_if_cancelled()
            model_input = torch.cat([latents] * 2) if guided else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            noise = unet(
                model_input.unflatten(0, (-1, views)), timestep, prompt, normal_latents,
                position_latents, camera_ids, features, reference_scale,
            )
            if guided:
                unconditional, conditional = noise.chunk(2)
                noise = unconditional + guidance_scale * (conditional - unconditional)
            latents = scheduler.step(noise, timestep, latents, generator=generator).prev_sample
            progress(stage, step + 1, steps)
        cancel.raise_if_cancelled()
        images = vae.decode(latents / vae.config.scaling_factor).sample
    return (images.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
