"""DINOv2 image conditioning for the Hunyuan3D-2 DiT, single- and multi-view.

The encoder is transformers' ``Dinov2Model`` built from the config dict that the official
``config.yaml`` carries inline (so nothing is fetched), its weights under the
``conditioner.main_image_encoder.model.`` prefix of the variant's checkpoint. Images arrive as
(b, 3, s, s) in [-1, 1]; they are resized (bilinear, antialiased) to the encoder's size,
normalised with ImageNet statistics and encoded; the full ``last_hidden_state`` (class token
included) is the condition. The multi-view encoder adds a fixed sin/cos view embedding (front,
left, back, right = 0..3) to each view's tokens and concatenates the views.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn
from transformers import Dinov2Config, Dinov2Model

from backend.models.hunyuan3d.config import VIEW_INDEX as VIEW_INDEX  # re-exported: its old home
from backend.models.hunyuan3d.config import ConditionerConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sincos_embedding(dim: int, positions: np.ndarray) -> np.ndarray:
    """1-D sin/cos embedding: positions (m,) -> (m, dim), sines first (MAE convention)."""
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10_000**omega
    angles = np.einsum("m,d->md", positions.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


class ImageEncoder(nn.Module):
    """Wraps ``Dinov2Model`` as ``self.model`` so checkpoint keys line up."""

    def __init__(self, config: ConditionerConfig) -> None:
        super().__init__()
        dino_config = Dinov2Config.from_dict(dict(config.dinov2))
        # SDPA keeps the attention memory linear in tokens; the maths is the same.
        dino_config._attn_implementation = "sdpa"
        self.model = Dinov2Model(dino_config)
        self.model.eval().requires_grad_(False)
        self.config = config
        self.hidden_size = dino_config.hidden_size
        self.num_patches = (config.image_size // 14) ** 2 + (1 if config.use_cls_token else 0)
        for name, value in self._constants(None).items():
            self.register_buffer(name, value, persistent=False)

    def _constants(self, device: torch.device | None) -> dict[str, Tensor]:
        constants = {
            "mean": torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1),
            "std": torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1),
        }
        if self.config.multi_view:
            table = sincos_embedding(self.hidden_size, np.arange(self.config.view_num))
            constants["view_table"] = torch.from_numpy(table).float().to(device)
        return constants

    def reset_buffers(self) -> None:
        """Recompute the constant buffers (after a meta-device build)."""
        for name, value in self._constants(self.mean.device).items():
            setattr(self, name, value)

    def _encode(self, images: Tensor) -> Tensor:
        """images (n, 3, s, s) in [-1, 1] -> tokens (n, num_patches, hidden)."""
        dtype = self.model.embeddings.patch_embeddings.projection.weight.dtype
        images = ((images + 1) / 2).to(dtype)
        size = self.config.image_size
        if images.shape[-2:] != (size, size):
            # What torchvision's Resize(size, antialias=True) does on a square tensor.
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        images = (images - self.mean.to(dtype)) / self.std.to(dtype)
        tokens = self.model(pixel_values=images).last_hidden_state
        return tokens if self.config.use_cls_token else tokens[:, 1:]

    def forward(self, images: Tensor, view_indices: tuple[int, ...] = (0,)) -> Tensor:
        """Single view: images (b, 3, s, s). Multi-view: (b, v, 3, s, s) with v view indices.

        Returns the condition tokens (b, v * num_patches, hidden).
        """
        if not self.config.multi_view:
            return self._encode(images)
        b, v = images.shape[:2]
        tokens = self._encode(images.flatten(0, 1)).view(b, v, -1, self.hidden_size)
        views = self.view_table[list(view_indices)].to(tokens.dtype)
        tokens = tokens + views[None, :, None, :]
        return tokens.reshape(b, -1, self.hidden_size)

    def unconditional(self, batch: int, views: int = 1) -> Tensor:
        """The all-zero condition classifier-free guidance contrasts with."""
        weight = self.model.embeddings.patch_embeddings.projection.weight
        return weight.new_zeros(batch, self.num_patches * views, self.hidden_size)


class Conditioner(nn.Module):
    """Holds the encoder as ``main_image_encoder`` (the official key prefix)."""

    def __init__(self, config: ConditionerConfig) -> None:
        super().__init__()
        self.main_image_encoder = ImageEncoder(config)
