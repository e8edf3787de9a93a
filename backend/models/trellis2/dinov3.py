"""TRELLIS.2's image conditioner: framing, then DINOv3 ViT-L/16 tokens of the last layer.

Upstream: ``Trellis2ImageTo3DPipeline.preprocess_image`` and
``trellis2/modules/image_feature_extractor.py:DinoV3FeatureExtractor`` over
``facebook/dinov3-vitl16-pretrain-lvd1689m`` (transformers format: ``config.json`` +
``model.safetensors``; gated on the hub). On the shared cut-out (alpha = subject):

1. an input larger than 1024 px on its long side is first shrunk to 1024 (LANCZOS);
2. box of the pixels with alpha > 0.8 * 255, centre its float midpoint, side
   ``int(max(w, h))`` (no margin, unlike v1's 1.2); crop ``centre +- side // 2`` (PIL pads);
3. premultiply in float32, back to uint8 by truncation (black background), RGB;
4. resize to 512 or 1024 (the stage's conditioning size) with LANCZOS, /255, ImageNet mean/std;
5. patch + register embeddings and the ViT layers with their RoPE, *without* the model's final
   norm; then a LayerNorm without affine: (n, 1 + 4 + (size / 16)^2, 1024) tokens.

The negative condition is zeros. The ViT is built from ``config.json`` by the installed
transformers (DINOv3 support: transformers >= 4.56) and loaded from the local files only,
strictly (a missing or unexpected tensor is an error), in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from backend.models.trellis.conditioners import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    premultiply,
    subject_box,
)
from shared_protocol.errors import ErrorCode, ProtocolError

DINOV3_REPO = "facebook/dinov3-vitl16-pretrain-lvd1689m"
MAX_INPUT = 1024
ACCESS_HINT = (
    f"DINOv3 is gated: accept Meta's licence on https://huggingface.co/{DINOV3_REPO} with your "
    "Hugging Face account, log in (`hf auth login`), then run "
    "`dreamcad-backend download trellis2-4b`; or point DREAMCAD_WEIGHTS_TRELLIS2_4B_DINOV3 at a "
    "folder holding its config.json and model.safetensors."
)


def frame_subject(rgba: np.ndarray, where: str = "images") -> Image.Image:
    """TRELLIS.2's framing of a cut-out (h, w, 4) uint8 -> a square RGB image, black backing."""
    image = Image.fromarray(rgba, "RGBA")
    longest = max(image.size)
    if longest > MAX_INPUT:
        scale = MAX_INPUT / longest
        size = (int(image.width * scale), int(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    box = subject_box(np.asarray(image)[:, :, 3], 1.0, where)
    return Image.fromarray(premultiply(np.asarray(image.crop(box))))


class Dinov3Conditioner:
    """Framed images -> DINOv3 last-layer tokens at a given size; the negative is zeros."""

    def __init__(self, model: Any, device: str | torch.device) -> None:
        self.model, self.device = model, torch.device(device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    def pixels(self, framed: list[Image.Image], size: int) -> torch.Tensor:
        arrays = [
            np.asarray(image.resize((size, size), Image.Resampling.LANCZOS).convert("RGB"))
            for image in framed
        ]
        batch = torch.from_numpy(np.stack(arrays)).to(self.device).permute(0, 3, 1, 2)
        return (batch.float() / 255 - self.mean) / self.std

    @torch.no_grad()
    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(n, 3, s, s) normalised -> (n, tokens, width): every layer, no final norm, LN."""
        pixels = pixels.to(self.model.embeddings.patch_embeddings.weight.dtype)
        hidden = self.model.embeddings(pixels, bool_masked_pos=None)
        rope = self.model.rope_embeddings(pixels)
        for layer in self.model.model.layer:
            hidden = layer(hidden, position_embeddings=rope)
        return F.layer_norm(hidden.float(), hidden.shape[-1:])

    def encode(self, images: list[np.ndarray], size: int) -> torch.Tensor:
        framed = [frame_subject(image, f"images[{i}]") for i, image in enumerate(images)]
        return self.features(self.pixels(framed, size))

    def negative(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(cond)


def load_dinov3(folder: Path | None, device: str | torch.device) -> Dinov3Conditioner:
    """DINOv3 from ``folder`` (config.json + model.safetensors), strictly, float32, offline."""
    if (
        folder is None
        or not (folder / "config.json").is_file()
        or not (folder / "model.safetensors").is_file()
    ):
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"trellis2-4b needs the DINOv3 conditioner ({DINOV3_REPO}), which is not on this "
            "machine",
            hint=ACCESS_HINT,
        )
    from transformers import DINOv3ViTModel

    model, info = DINOv3ViTModel.from_pretrained(
        str(folder), local_files_only=True, output_loading_info=True, dtype=torch.float32
    )
    bad = {
        k: v
        for k, v in info.items()
        if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v
    }
    if bad:
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"DINOv3 weights in {folder} do not match its config: {bad}",
            hint="Download the DINOv3 files again.",
        )
    return Dinov3Conditioner(model.to(device).eval().requires_grad_(False), device)
