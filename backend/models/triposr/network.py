"""The whole TripoSR network: image -> triplanes (``scene codes``), and the field they define.

Top-level module names equal the official checkpoint's prefixes (``image_tokenizer``,
``tokenizer``, ``backbone``, ``post_processor``, ``decoder``); the renderer has no weights and
is :func:`~backend.models.triposr.triplane.query_field` here. The forward pass may run under a
half-precision autocast on CUDA (the transformer and ViT are safe in bf16/fp16; see
pipeline.py); the field query keeps the small decoder in the planes' dtype and returns float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.transformer import Transformer1D
from backend.models.triposr.triplane import (
    NerfMlp,
    TriplaneTokenizer,
    TriplaneUpsampler,
    query_field,
)
from backend.models.triposr.vit import DinoImageTokenizer


class TripoSRNet(nn.Module):
    """images (b, 3, s, s) in [0, 1] at ``cond_image_size`` -> triplanes (b, 3, c, 2p, 2p)."""

    def __init__(self, config: TripoSRConfig) -> None:
        super().__init__()
        self.config = config
        self.image_tokenizer = DinoImageTokenizer(config.vit)
        self.tokenizer = TriplaneTokenizer(config)
        self.backbone = Transformer1D(config)
        self.post_processor = TriplaneUpsampler(config)
        self.decoder = NerfMlp(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image_tokens = self.image_tokenizer(images)  # (b, 1 + n, hidden)
        tokens = self.tokenizer(images.shape[0]).to(image_tokens.dtype)
        tokens = self.backbone(tokens, image_tokens)
        return self.post_processor(self.tokenizer.detokenize(tokens))

    def query(
        self,
        planes: torch.Tensor,
        points: torch.Tensor,
        chunk_size: int = 0,
        want_color: bool = True,
        between_chunks: Callable[[], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Field of one scene (planes (3, c, h, w)) at points (k, 3); see ``query_field``."""
        return query_field(
            self.config, self.decoder, planes, points, chunk_size, want_color, between_chunks
        )
