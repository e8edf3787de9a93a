"""TRELLIS's structured-latent flow network (``SLatFlowModel``), a sparse U-shaped DiT.

Upstream: ``trellis/models/structured_latent_flow.py``. For the released
``slat_flow_img_dit_L_64l8p2_fp16`` (in 8, io_block_channels [128], model 1024, 24 blocks):

1. ``input_layer`` SparseLinear 8 -> 128, cast to the torso dtype;
2. ``input_blocks``: per io stage, ``num_io_res_blocks - 1`` SparseResBlock3d at the stage
   width, then one that downsamples (2x, upstream's sum/(n+1)) and widens to the next stage;
   each block's output features are kept as a skip;
3. absolute position embedding of the downsampled coordinates added;
4. ``blocks``: ModulatedTransformerCrossBlock with full self attention over each sample's
   voxels and cross attention to the condition tokens; when every sample has as many voxels
   as the others (one sample, or the guided sampler's copies of one), the features are viewed
   as dense (B, L, C) tokens, so attention is one SDPA over the batch and the per-sample
   modulation a broadcast, with no per-sample loop or gather (the same maths);
5. ``out_blocks``: mirror of the input blocks, each taking ``cat[h, skip]`` (skips in reverse),
   the first of a stage upsampling back;
6. LayerNorm without affine (eps 1e-5) in the torso dtype, cast back, ``out_layer`` 128 -> 8.

The constructor takes the checkpoint JSON's ``args`` as they are. ``use_fp16`` casts the torso
(input/out blocks and transformer blocks: Linear and conv weights) to half, as the official
files store them; ``dtype`` follows the torso's weights, so ``convert_torso(model, float32)``
(or loading float32 weights) gives a float32 model. ``pe_mode`` "rope" (unused by any released
checkpoint) is refused. Upstream's training-time init is not reproduced: weights get loaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import SparseLinear, SparseResBlock3d, SparseTensor, SparseTokens
from backend.models.trellis.condition import PreparedCondition, block_contexts
from backend.models.trellis.transformer import (
    AbsolutePositionEmbedder,
    DenseTokens,
    ModulatedTransformerCrossBlock,
    TimestepEmbedder,
    TokenLayout,
    convert_torso,
)

DENSE_TOKENS = DenseTokens()


class SLatFlowModel(nn.Module):
    """Velocity of the structured latent: ``model(x_t, 1000 t, cond) -> v`` on x_t's voxels."""

    def __init__(
        self,
        resolution: int,
        in_channels: int,
        model_channels: int,
        cond_channels: int,
        out_channels: int,
        num_blocks: int,
        num_heads: int | None = None,
        num_head_channels: int = 64,
        mlp_ratio: float = 4,
        patch_size: int = 2,
        num_io_res_blocks: int = 2,
        io_block_channels: list[int] | None = None,
        pe_mode: str = "ape",
        use_fp16: bool = False,
        use_checkpoint: bool = False,
        use_skip_connection: bool = True,
        share_mod: bool = False,
        qk_rms_norm: bool = False,
        qk_rms_norm_cross: bool = False,
    ) -> None:
        super().__init__()
        if pe_mode != "ape":
            raise ValueError(f"pe_mode {pe_mode!r} is not supported (released models use 'ape')")
        if io_block_channels is not None and 2 ** len(io_block_channels) != patch_size:
            raise ValueError(
                f"patch_size {patch_size} needs log2(patch_size) io stages, "
                f"got {len(io_block_channels)}"
            )
        self.resolution = resolution
        self.model_channels = model_channels
        self.num_heads = num_heads or model_channels // num_head_channels
        self.use_skip_connection = use_skip_connection
        self.share_mod = share_mod
        del use_checkpoint  # training-time activation checkpointing: nothing to do at inference

        self.t_embedder = TimestepEmbedder(model_channels)
        if share_mod:
            self.adaLN_modulation = nn.Sequential(
                nn.SiLU(), nn.Linear(model_channels, 6 * model_channels)
            )
        self.pos_embedder = AbsolutePositionEmbedder(model_channels)
        stages = list(io_block_channels or [])
        self.input_layer = SparseLinear(in_channels, stages[0] if stages else model_channels)

        self.input_blocks = nn.ModuleList()
        for width, next_width in zip(stages, [*stages[1:], model_channels], strict=True):
            self.input_blocks.extend(
                SparseResBlock3d(width, model_channels, out_channels=width)
                for _ in range(num_io_res_blocks - 1)
            )
            self.input_blocks.append(
                SparseResBlock3d(width, model_channels, out_channels=next_width, downsample=True)
            )

        self.blocks = nn.ModuleList(
            ModulatedTransformerCrossBlock(
                model_channels,
                cond_channels,
                num_heads=self.num_heads,
                mlp_ratio=mlp_ratio,
                qk_rms_norm=qk_rms_norm,
                qk_rms_norm_cross=qk_rms_norm_cross,
                share_mod=share_mod,
            )
            for _ in range(num_blocks)
        )

        factor = 2 if use_skip_connection else 1
        self.out_blocks = nn.ModuleList()
        for width, previous in zip(
            reversed(stages), [model_channels, *reversed(stages[1:])], strict=True
        ):
            self.out_blocks.append(
                SparseResBlock3d(previous * factor, model_channels, width, upsample=True)
            )
            self.out_blocks.extend(
                SparseResBlock3d(width * factor, model_channels, out_channels=width)
                for _ in range(num_io_res_blocks - 1)
            )
        self.out_layer = SparseLinear(stages[0] if stages else model_channels, out_channels)
        if use_fp16:
            self.convert_torso(torch.float16)

    def convert_torso(self, dtype: torch.dtype) -> None:
        """Cast the input/out blocks' and transformer blocks' Linear and conv weights."""
        for part in (self.input_blocks, self.blocks, self.out_blocks):
            convert_torso(part, dtype)

    @property
    def dtype(self) -> torch.dtype:
        """The torso's compute dtype (that of its weights)."""
        return self.blocks[0].self_attn.to_qkv.weight.dtype if len(self.blocks) else torch.float32

    def forward(self, x: SparseTensor, t: Tensor, cond: Tensor | PreparedCondition) -> SparseTensor:
        """x (N, in) noisy latent, t (B,) timesteps x1000, cond (B, L, cond) -> (N, out);
        ``cond`` may be a ``PreparedCondition`` of those tokens (the same maths)."""
        dtype = self.dtype
        h = self.input_layer(x)
        h = h.replace(h.feats.to(dtype))
        t_emb = self.t_embedder(t)
        if self.share_mod:
            t_emb = self.adaLN_modulation(t_emb)
        t_emb = t_emb.to(dtype)

        skips = []
        for block in self.input_blocks:
            h = block(h, t_emb)
            skips.append(h.feats)

        features = h.feats + self.position_embedding(h, dtype)
        tokens: TokenLayout = SparseTokens(h)
        lengths = {rows.stop - rows.start for rows in h.layout}
        if len(lengths) == 1:
            features = features.view(h.batch_size, lengths.pop(), -1)
            tokens = DENSE_TOKENS
        contexts = block_contexts(cond, self.blocks, dtype)
        for block, context in zip(self.blocks, contexts, strict=True):
            features = block(features, t_emb, context, tokens)
        h = h.replace(features.reshape(len(h), -1))

        for block, skip in zip(self.out_blocks, reversed(skips), strict=True):
            if self.use_skip_connection:
                h = h.replace(torch.cat([h.feats, skip], dim=1))
            h = block(h, t_emb)

        h = h.replace(F.layer_norm(h.feats, h.feats.shape[-1:]).to(x.dtype))
        return self.out_layer(h)

    def position_embedding(self, h: SparseTensor, dtype: torch.dtype) -> Tensor:
        """The embedding of ``h``'s coordinates, once per coordinate set (steps reuse it)."""
        key = f"slat_ape_{self.model_channels}_{dtype}"
        position = h.cache.get(key)
        if position is None:
            position = self.pos_embedder(h.coords[:, 1:]).to(dtype)
            h.cache[key] = position
        return position
