"""Cross-view self-attention: every view's tokens attend to all views' tokens.

MVDream's one change to the SD 2.1 transformer block is that the first (self) attention runs
over the tokens of all ``num_views`` images of a sample together, so the views agree. In
diffusers terms that is an attention processor on ``attn1``: fold the view axis into the token
axis, attend (PyTorch's fused scaled-dot-product kernel), unfold. Batches hold whole samples:
views of one sample are consecutive, as the sampler builds them.
"""

from __future__ import annotations

import torch
from torch.nn import functional


class MultiViewAttnProcessor:
    """``attn1`` processor attending across ``num_views`` consecutive batch entries."""

    def __init__(self, num_views: int = 4) -> None:
        self.num_views = num_views

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """hidden_states (b * views, tokens, channels) -> same shape."""
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("the multi-view processor is for unmasked self-attention only")
        views = self.num_views
        batch_views, tokens, channels = hidden_states.shape
        if batch_views % views:
            raise ValueError(f"batch {batch_views} is not a multiple of {views} views")
        joint = hidden_states.reshape(batch_views // views, views * tokens, channels)
        heads = attn.heads

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(-1, (heads, -1)).transpose(1, 2)

        query = split_heads(attn.to_q(joint))
        key = split_heads(attn.to_k(joint))
        value = split_heads(attn.to_v(joint))
        mixed = functional.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        mixed = mixed.transpose(1, 2).flatten(2)
        out = attn.to_out[1](attn.to_out[0](mixed))
        return out.reshape(batch_views, tokens, channels)
