"""TRELLIS's conditioners: images through DINOv2 (with TRELLIS's framing), text through CLIP.

Image path (upstream ``preprocess_image`` + ``encode_image``), on the cut-out the template made
(alpha = subject mask; TRELLIS's own rembg step is that shared cut-out):

1. box of the pixels with alpha > 0.8 * 255; centre = its float midpoint; side =
   ``int(max(w, h) * 1.2)``; crop ``centre +- side // 2`` (PIL rounds the float box and pads
   with transparent black);
2. resize to the encoder size (518) with LANCZOS (PIL resamples RGBA premultiplied);
3. premultiply in float32 (``rgb * a``), back to uint8 by truncation: a black background;
4. /255, ImageNet mean/std, DINOv2 -> ``x_prenorm`` (all 1374 tokens) -> layer_norm without
   affine (eps 1e-5). The negative condition is zeros.

Text path (upstream ``encode_text``): CLIP's tokenizer (77 tokens, padded with max_length,
truncated), ``CLIPTextModel(input_ids).last_hidden_state`` (after the final LayerNorm, no
attention mask passed, like upstream); the negative condition is the encoding of ``""``. Both
encoders run in float32, as upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as nnf

from backend.models.trellis.dinov2 import CONFIG_FILE, WEIGHTS_FILE, DinoConfig, Dinov2WithRegisters
from backend.models.trellis.loading import assign_state, read_state, read_tensors
from shared_protocol.errors import ErrorCode, ProtocolError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ALPHA_THRESHOLD = 0.8 * 255  # pixels above it bound the subject
MARGIN = 1.2  # the crop's side over the subject's longer side
TEXT_LENGTH = 77
# Legacy buffers some CLIP files carry (transformers now rebuilds them): allowed, ignored.
CLIP_IGNORED_KEYS = ("text_model.embeddings.position_ids",)


def frame_subject(rgba: np.ndarray, size: int, where: str = "images") -> np.ndarray:
    """TRELLIS's framing of a cut-out: (h, w, 4) uint8 -> (size, size, 3) uint8, black backing."""
    box = subject_box(rgba[:, :, 3], MARGIN, where)
    framed = Image.fromarray(rgba).crop(box).resize((size, size), Image.Resampling.LANCZOS)
    return premultiply(np.asarray(framed))


def subject_box(
    alpha: np.ndarray, margin: float, where: str
) -> tuple[float, float, float, float]:
    """The square crop box (left, top, right, bottom) centred on the pixels whose ``alpha`` is
    above ALPHA_THRESHOLD, its side the subject's longer side times ``margin``; ProtocolError
    (``invalid_image`` naming ``where``) when there is no such pixel. Shared with TRELLIS.2."""
    rows, cols = np.nonzero(alpha > ALPHA_THRESHOLD)
    if rows.size == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "no opaque subject in the image (no pixel with alpha above 80%)",
            field=where,
            hint="Send a cut-out with an opaque subject, or use background 'auto'.",
        )
    left, top, right, bottom = cols.min(), rows.min(), cols.max(), rows.max()
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    side = int(max(right - left, bottom - top) * margin)
    return (centre_x - side // 2, centre_y - side // 2, centre_x + side // 2, centre_y + side // 2)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 -> (h, w, 3) uint8: colour times alpha, i.e. on a black backing."""
    pixels = rgba.astype(np.float32) / 255
    premultiplied = pixels[:, :, :3] * pixels[:, :, 3:4]
    return (premultiplied * 255).astype(np.uint8)


class ImageConditioner:
    """Cut-out images -> DINOv2 tokens ``(n, 1 + registers + patches, width)``; neg = zeros."""

    def __init__(self, encoder: Dinov2WithRegisters, device: str | torch.device) -> None:
        self.encoder, self.device = encoder, torch.device(device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @property
    def size(self) -> int:
        return self.encoder.config.image_size

    def pixels(self, framed: list[np.ndarray]) -> torch.Tensor:
        """Framed uint8 images -> the encoder's normalised (n, 3, size, size) float32 input."""
        batch = torch.from_numpy(np.stack(framed)).to(self.device).permute(0, 3, 1, 2)
        return (batch.float() / 255 - self.mean) / self.std

    @torch.no_grad()
    def encode(self, images: list[np.ndarray]) -> torch.Tensor:
        framed = [frame_subject(image, self.size, f"images[{i}]") for i, image in enumerate(images)]
        features = self.encoder(self.pixels(framed))
        return nnf.layer_norm(features, features.shape[-1:])

    def negative(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(cond[:1])


def load_image_conditioner(folder: Path, device: str | torch.device) -> ImageConditioner:
    """``config.json`` + ``model.safetensors`` of DINOv2-with-registers, strictly, float32."""
    config = DinoConfig.from_json(folder / CONFIG_FILE)
    with torch.device("meta"):
        encoder = Dinov2WithRegisters(config)
    state = {key: value.float() for key, value in read_state(folder / WEIGHTS_FILE).items()}
    assign_state(encoder, state, f"DINOv2 {WEIGHTS_FILE}")
    return ImageConditioner(encoder.to(device).eval().requires_grad_(False), device)


@dataclass
class TextConditioner:
    """Prompts -> CLIP ``last_hidden_state`` (n, 77, 768); neg = the encoding of ``""``."""

    model: Any  # transformers.CLIPTextModel
    tokenizer: Any
    device: torch.device
    null: torch.Tensor | None = None

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            prompts,
            max_length=TEXT_LENGTH,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )["input_ids"].to(self.device)
        return self.model(input_ids=tokens).last_hidden_state

    def negative(self, cond: torch.Tensor) -> torch.Tensor:
        if self.null is None:
            self.null = self.encode([""])
        return self.null


def load_text_conditioner(folder: Path, device: str | torch.device) -> TextConditioner:
    """CLIP ViT-L/14's text tower from the hub's ``openai/clip-vit-large-patch14`` files.

    ``model.safetensors`` holds both towers: every ``text_model.*`` tensor the text model has
    must be there (strict), the vision tower's are not read."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPTextModel

    try:
        text_config = CLIPConfig.from_pretrained(folder).text_config
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"CLIP text encoder files incomplete in {folder}: {error}",
            hint="Download the text model's CLIP component (`dreamcad-backend download MODEL "
            "--with clip`).",
        ) from error
    with torch.device("meta"):
        model = CLIPTextModel(text_config)
    # transformers 4 nests the tower under ``text_model``, 5 does not: match the file to it.
    nested = any(key.startswith("text_model.") for key in model.state_dict())
    state = {
        key if nested else key.removeprefix("text_model."): value.float()
        for key, value in read_tensors(folder / "model.safetensors", "text_model.").items()
        if key not in CLIP_IGNORED_KEYS
    }
    assign_state(model, state, "CLIP model.safetensors (text_model)", rebuild=_position_ids)
    model = model.to(device).eval().requires_grad_(False)
    return TextConditioner(model, tokenizer, torch.device(device))


def _position_ids(model: torch.nn.Module) -> None:
    """CLIP's non-persistent ``position_ids`` buffer (0..n-1), which a meta build leaves empty."""
    for module in model.modules():
        buffer = getattr(module, "position_ids", None)
        if isinstance(buffer, torch.Tensor) and buffer.is_meta:
            length = buffer.shape[-1]
            module.register_buffer(
                "position_ids", torch.arange(length).expand(buffer.shape), persistent=False
            )
