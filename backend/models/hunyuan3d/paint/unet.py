"""Hunyuan3D-Paint's multi-view UNet ("2.5D"): Stable Diffusion 2 blocks that see all views.

The official checkpoint (``hunyuan3d-paint-v2-0/unet``: ``config.json`` of a diffusers
``UNet2DConditionModel`` + ``diffusion_pytorch_model.bin``) holds two UNets of that config:

- ``unet.*``: the denoiser of the generated views. Its ``conv_in`` takes 12 channels (noisy
  latents + the normal-map and position-map latents of the same view), its ``class_embedding``
  (``nn.Embedding(5 + 44, time_embed_dim)``) embeds the camera index of each view, and it
  carries ``learned_text_clip_gen`` / ``learned_text_clip_ref`` (1, 77, cross_attention_dim),
  learned stand-ins for a text prompt. Every transformer block gains two attentions:
  ``attn_refview`` (the view's tokens attend to the reference image's tokens) and
  ``attn_multiview`` (the tokens of all views of one object attend to each other).
- ``unet_dual.*``: the reference branch, the plain config run once on the (clean, t = 0) input
  image's latents; each transformer block records its normalised input tokens for the
  ``attn_refview`` of the same block in ``unet``.

Checkpoint keys of a wrapped block: ``...transformer_blocks.<k>.transformer.<original name>``
plus ``...transformer_blocks.<k>.attn_multiview.*`` / ``attn_refview.*``. Instead of passing
the mode through ``cross_attention_kwargs`` we give every wrapped block one shared
:class:`ViewContext` that the model sets before each pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

MAX_REFERENCE_CAMERAS = 5  # camera ids 0-4 are reference views, generated views start at 5
MAX_GENERATED_CAMERAS = 12 * 3 + 4 * 2  # 12 azimuths at 3 elevations + 4 at top and bottom
TEXT_TOKENS = 77
CONDITION_CHANNELS = 12  # noisy latents, normal latents, position latents (4 each)


@dataclass
class ViewContext:
    """What the wrapped blocks need for one UNet pass.

    ``mode``: "record" (reference branch: store tokens), "attend" (denoiser: use them) or None.
    ``views``: views per object in the batch, rows are (object, view) ordered object-major.
    ``reference``: block name -> (objects, reference views * tokens, channels).
    ``reference_scale``: a float or (objects,) per object (0 silences the reference, which is
    how classifier-free guidance builds its unconditional half).
    """

    mode: str | None = None
    views: int = 1
    reference: dict[str, Tensor] = field(default_factory=dict)
    reference_scale: float | Tensor = 1.0
    multiview_scale: float = 1.0


def _extra_attention(block: nn.Module) -> nn.Module:
    """A self-attention shaped like the block's own ``attn1`` with an output bias."""
    from diffusers.models.attention_processor import Attention

    return Attention(
        query_dim=block.dim, heads=block.num_attention_heads, dim_head=block.attention_head_dim,
        dropout=block.dropout, bias=block.attention_bias, cross_attention_dim=None,
        upcast_attention=block.attn1.upcast_attention, out_bias=True,
    )


class MultiViewBlock(nn.Module):
    """A diffusers ``BasicTransformerBlock`` (layer-norm type, SD 2) with reference and
    multi-view attention between its self-attention and cross-attention."""

    def __init__(
        self, transformer: nn.Module, name: str, context: ViewContext, extra_attention: bool
    ) -> None:
        super().__init__()
        if transformer.norm_type != "layer_norm" or transformer.pos_embed is not None:
            raise ValueError(f"{name}: only Stable Diffusion's layer-norm blocks are supported")
        self.transformer = transformer
        self.name = name
        self.context = context
        if extra_attention:
            self.attn_multiview = _extra_attention(transformer)
            self.attn_refview = _extra_attention(transformer)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        **_unused: Any,  # timestep / class_labels / cross_attention_kwargs: unused by SD 2 blocks
    ) -> Tensor:
        """hidden_states (objects * views, tokens, channels) -> the same shape."""
        block, context = self.transformer, self.context
        normed = block.norm1(hidden_states)
        hidden_states = hidden_states + block.attn1(
            normed,
            encoder_hidden_states=encoder_hidden_states if block.only_cross_attention else None,
            attention_mask=attention_mask,
        )
        rows, tokens, channels = normed.shape
        views = context.views
        if context.mode == "record":
            context.reference[self.name] = normed.reshape(rows // views, views * tokens, channels)
        if context.mode == "attend" and hasattr(self, "attn_refview"):
            reference = context.reference[self.name].repeat_interleave(views, dim=0)
            scale = context.reference_scale
            if isinstance(scale, Tensor):
                scale = scale.repeat_interleave(views).view(-1, 1, 1)
            hidden_states = hidden_states + scale * self.attn_refview(
                normed, encoder_hidden_states=reference
            )
        if views > 1 and hasattr(self, "attn_multiview"):
            joint = normed.reshape(rows // views, views * tokens, channels)
            attended = self.attn_multiview(joint, encoder_hidden_states=joint)
            hidden_states = hidden_states + context.multiview_scale * attended.reshape(
                rows, tokens, channels
            )
        if block.attn2 is not None:
            hidden_states = hidden_states + block.attn2(
                block.norm2(hidden_states),
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=encoder_attention_mask,
            )
        return hidden_states + block.ff(block.norm3(hidden_states))


def _wrap_blocks(unet: nn.Module, context: ViewContext, extra_attention: bool) -> None:
    """Replace every transformer block of the cross-attention stages (names as upstream's)."""
    from diffusers.models.attention import BasicTransformerBlock

    stages = [(f"down_{i}", b) for i, b in enumerate(unet.down_blocks)]
    stages.append(("mid", unet.mid_block))
    stages += [(f"up_{i}", b) for i, b in enumerate(unet.up_blocks)]
    for prefix, stage in stages:
        if not getattr(stage, "has_cross_attention", False):
            continue
        for a, attention in enumerate(stage.attentions):
            blocks = attention.transformer_blocks
            for k, block in enumerate(blocks):
                if isinstance(block, BasicTransformerBlock):
                    blocks[k] = MultiViewBlock(block, f"{prefix}_{a}_{k}", context, extra_attention)


class PaintUNet(nn.Module):
    """The two UNets of the paint model, built from the official ``unet/config.json``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from diffusers import UNet2DConditionModel

        self.config = dict(config)
        self.context = ViewContext()
        self.unet = UNet2DConditionModel.from_config(self.config)
        self.unet_dual = UNet2DConditionModel.from_config(self.config)
        _wrap_blocks(self.unet_dual, self.context, extra_attention=False)
        _wrap_blocks(self.unet, self.context, extra_attention=True)
        old = self.unet.conv_in
        self.unet.conv_in = nn.Conv2d(
            CONDITION_CHANNELS, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
            padding=old.padding,
        )
        width = self.unet.config.cross_attention_dim
        self.unet.learned_text_clip_gen = nn.Parameter(torch.randn(1, TEXT_TOKENS, width))
        self.unet.learned_text_clip_ref = nn.Parameter(torch.randn(1, TEXT_TOKENS, width))
        time_width = self.unet.time_embedding.linear_2.out_features
        self.unet.class_embedding = nn.Embedding(
            MAX_REFERENCE_CAMERAS + MAX_GENERATED_CAMERAS, time_width
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.conv_in.weight.dtype

    @torch.no_grad()
    def encode_reference(self, latents: Tensor, cameras: Tensor) -> dict[str, Tensor]:
        """Run the reference branch once: latents (objects, refs, 4, h, w), cameras
        (objects, refs) -> block name -> recorded tokens."""
        objects, refs = latents.shape[:2]
        context = self.context
        context.mode, context.views, context.reference = "record", refs, {}
        prompt = self.unet.learned_text_clip_ref.expand(objects * refs, -1, -1)
        try:
            # the dual UNet's config has no class embedding, so the camera ids change nothing
            # there; upstream passes them anyway and so do we (a config with one would use them)
            self.unet_dual(
                latents.flatten(0, 1), 0, encoder_hidden_states=prompt,
                class_labels=cameras.flatten(), return_dict=False,
            )
            return context.reference
        finally:
            context.mode, context.reference = None, {}

    @torch.no_grad()
    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float,
        prompt: Tensor,
        normal_latents: Tensor,
        position_latents: Tensor,
        cameras: Tensor,
        reference: dict[str, Tensor],
        reference_scale: float | Tensor = 1.0,
        multiview_scale: float = 1.0,
    ) -> Tensor:
        """Predict the noise of the generated views.

        sample, normal_latents, position_latents (objects, views, 4, h, w); prompt (objects,
        77, c); cameras (objects, views) generated-view ids (0-43); reference from
        :meth:`encode_reference` -> (objects * views, 4, h, w).
        """
        _objects, views = sample.shape[:2]
        stacked = torch.cat([sample, normal_latents, position_latents], dim=2).flatten(0, 1)
        context = self.context
        context.mode, context.views, context.reference = "attend", views, reference
        context.reference_scale, context.multiview_scale = reference_scale, multiview_scale
        try:
            return self.unet(
                stacked, timestep, prompt.repeat_interleave(views, dim=0),
                class_labels=(cameras + MAX_REFERENCE_CAMERAS).flatten(), return_dict=False,
            )[0]
        finally:
            context.mode, context.views, context.reference = None, 1, {}
