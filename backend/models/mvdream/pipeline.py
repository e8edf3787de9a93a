"""Text -> N consistent views: prompt encoding, DDIM with guidance, decoding. Diffusers-style.

``MVDreamPipeline.__call__`` follows diffusers' layout: check inputs, encode the prompt and the
negative prompt (OpenCLIP penultimate states), prepare cameras and latents, run the numbered
DDIM steps (one batched UNet call per step for both guidance halves, as upstream), decode the
views. Progress and cancel are honoured at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback
from backend.models.mvdream.camera import DEFAULT_AZIMUTHS, camera_embedding_input
from backend.models.mvdream.loading import MVDreamModels
from backend.models.mvdream.sampler import DDIMSchedule, alphas_cumprod, ddim_step, guided_noise
from backend.models.mvdream.tokenizer import tokenize
from backend.models.mvdream.unet import set_num_views


@dataclass
class MVDreamOutput:
    """views (n, size, size, 3) uint8 sRGB; cameras (n, 16) as fed to the UNet."""

    views: np.ndarray
    elevation: float
    azimuths: tuple[float, ...]
    cameras: np.ndarray
    latents: torch.Tensor | None = None  # (n, 4, h, w) final latents


class MVDreamPipeline:
    def __init__(self, models: MVDreamModels, tokenizer) -> None:
        self.models = models
        self.tokenizer = tokenizer
        self.cumulative = alphas_cumprod(models.config)
        self._views = 4

    @property
    def device(self) -> torch.device:
        return next(self.models.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.models.unet.parameters()).dtype

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """(1, 77, width) OpenCLIP penultimate states of ``prompt``."""
        tokens = tokenize(self.tokenizer, [prompt]).to(self.device)
        return self.models.text(tokens).to(self.dtype)

    def predict_noise(self, latents: torch.Tensor, timesteps: torch.Tensor,
                      context: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
        """UNet eps prediction for a [uncond; cond] batch of whole view groups."""
        return self.models.unet(latents, timesteps, encoder_hidden_states=context,
                                class_labels=cameras).sample

    def step(
        self,
        latents: torch.Tensor,
        schedule: DDIMSchedule,
        index: int,
        cond: torch.Tensor,
        uncond: torch.Tensor,
        cameras: torch.Tensor,
        guidance_scale: float,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One guided DDIM step at sampling position ``index`` (0 = noisiest)."""
        views = latents.shape[0]
        context = torch.cat([uncond.expand(views, -1, -1), cond.expand(views, -1, -1)])
        camera_pair = torch.cat([cameras, cameras])

        def predict(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.predict_noise(x, t, context, camera_pair)

        noise = guided_noise(predict, latents, int(schedule.timesteps[index]), guidance_scale)
        return ddim_step(latents, noise, float(schedule.alphas[index]),
                         float(schedule.alphas_prev[index]), float(schedule.sigmas[index]),
                         generator)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        *,
        negative_prompt: str = "",
        steps: int = 50,
        guidance_scale: float = 7.5,
        elevation: float = 15.0,
        azimuths: tuple[float, ...] = DEFAULT_AZIMUTHS,
        image_size: int = 256,
        seed: int = 0,
        eta: float = 0.0,
        latents: torch.Tensor | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> MVDreamOutput:
        cancel = cancel or CancelToken()
        report = progress or (lambda *args, **kwargs: None)
        factor = self.models.config.latent_factor
        if image_size % factor:
            raise ValueError(f"image_size must be a multiple of {factor}")
        # 1. conditioning
        cond = self.encode_prompt(prompt)
        uncond = self.encode_prompt(negative_prompt)
        camera_rows = camera_embedding_input(elevation, azimuths)
        cameras = torch.from_numpy(camera_rows).to(self.device, self.dtype)
        if len(azimuths) != self._views:
            set_num_views(self.models.unet, len(azimuths))
            self._views = len(azimuths)
        # 2. latents (drawn on the CPU so a seed means the same views on any device)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        shape = (len(azimuths), self.models.config.z_channels, image_size // factor,
                 image_size // factor)
        if latents is None:
            latents = torch.randn(shape, generator=generator)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must be {shape}, got {tuple(latents.shape)}")
        latents = latents.to(self.device, self.dtype)
        # 3. denoising
        latents = self.sample(latents, cond, uncond, cameras, steps=steps,
                              guidance_scale=guidance_scale, eta=eta, generator=generator,
                              progress=report, cancel=cancel)
        # 4. decoding
        cancel.raise_if_cancelled()
        views = self.decode(latents)
        return MVDreamOutput(views, float(elevation), tuple(azimuths), camera_rows, latents)

    @torch.no_grad()
    def sample(
        self,
        latents: torch.Tensor,
        cond: torch.Tensor,
        uncond: torch.Tensor,
        cameras: torch.Tensor,
        *,
        steps: int,
        guidance_scale: float,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> torch.Tensor:
        """The DDIM loop: noise (views, 4, h, w) -> clean latents, one guided step at a time."""
        schedule = DDIMSchedule.make(self.cumulative, steps, eta)
        total = len(schedule.timesteps)
        for index in range(total):
            if cancel is not None:
                cancel.raise_if_cancelled()
            latents, _ = self.step(latents, schedule, index, cond, uncond, cameras,
                                   guidance_scale, generator)
            if progress is not None:
                progress("views", index + 1, total, f"DDIM step {index + 1}/{total}")
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """latents (n, 4, h, w) -> (n, 8h, 8w, 3) uint8, one view at a time (memory)."""
        images = []
        for latent in latents:
            decoded = self.models.vae.decode(latent[None] / self.models.config.scale_factor)
            image = ((decoded.sample[0].float() + 1.0) / 2.0).clamp(0, 1)
            images.append((image.permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8))
        return np.stack(images)
