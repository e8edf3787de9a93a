"""TRELLIS.2's three rectified-flow DiTs: the dense structure flow and the sparse shape and
texture flows (one class, ``SLatFlowModel``, with 32 or 32 + 32 input channels).

Upstream: ``trellis2/models/sparse_structure_flow.py`` and ``structured_latent_flow.py``
(released configs: ``pe_mode`` "rope", ``share_mod``, ``qk_rms_norm`` and
``qk_rms_norm_cross``; C 1536, 30 blocks, 12 heads of 128, MLP ratio 5.3334). Keys:
``t_embedder.mlp.{0,2}``, ``adaLN_modulation.1`` (shared), ``input_layer``, ``blocks.{i}.*``,
``out_layer``. As upstream, only the blocks' linear layers are cast to the torso dtype
(``convert_torso``); the embedders, input/output layers, norms, RMS gammas and the blocks'
``modulation`` vectors stay float32.

- Structure flow: input (B, 8, 16, 16, 16) -> tokens x-major (``meshgrid`` 'ij'), RoPE phases
  of the grid positions; no patching.
- Shape / texture flow: sparse tokens on the voxel coordinates; the texture flow is given the
  normalised shape latent as ``concat_cond`` (concatenated after the noise's channels).

Upstream's structure flow registers its grid phases as a *persistent* complex buffer
``rope_phases``; we compute them (see loading.py: a file may carry the buffer, it is checked
against ours and dropped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import SparseTensor, SparseTokens
from backend.models.sparse.rope import rope_phases, sparse_rope_phases
from backend.models.trellis.condition import block_contexts
from backend.models.trellis.ss_flow import DENSE_TOKENS, grid_coords
from backend.models.trellis.transformer import TimestepEmbedder, convert_torso
from backend.models.trellis2.transformer import ModulatedCrossBlock


class _FlowTrunk(nn.Module):
    """What both flows share: timestep embedder, shared modulation, the block stack."""

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
        mlp_ratio: float = 4.0,
        pe_mode: str = "rope",
        share_mod: bool = False,
        qk_rms_norm: bool = False,
        qk_rms_norm_cross: bool = False,
        dtype: str = "float32",
        use_checkpoint: bool = False,
        initialization: str = "vanilla",
        rope_freq: tuple[float, float] = (1.0, 10000.0),
    ) -> None:
        super().__init__()
        if pe_mode != "rope" or tuple(rope_freq) != (1.0, 10000.0):
            raise ValueError("TRELLIS.2 flows are built with pe_mode 'rope' (1, 10000) only")
        self.resolution, self.in_channels, self.out_channels = (
            resolution, in_channels, out_channels,
        )  # fmt: skip
        self.model_channels = model_channels
        self.num_heads = num_heads or model_channels // num_head_channels
        self.head_dim = model_channels // self.num_heads
        self.share_mod = share_mod
        self.t_embedder = TimestepEmbedder(model_channels)
        if share_mod:
            self.adaLN_modulation = nn.Sequential(
                nn.SiLU(), nn.Linear(model_channels, 6 * model_channels)
            )
        self.blocks = nn.ModuleList(
            ModulatedCrossBlock(
                model_channels,
                cond_channels,
                self.num_heads,
                mlp_ratio,
                qk_rms_norm,
                qk_rms_norm_cross,
                share_mod,
            )
            for _ in range(num_blocks)
        )

    def convert_torso(self, dtype: torch.dtype) -> None:
        convert_torso(self.blocks, dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.blocks[0].self_attn.to_qkv.weight.dtype if len(self.blocks) else torch.float32

    def modulation(self, t: Tensor) -> Tensor:
        embedding = self.t_embedder(t)
        if self.share_mod:
            embedding = self.adaLN_modulation(embedding)
        return embedding.type(self.dtype)


class SparseStructureFlowModel(_FlowTrunk):
    """``forward(x (B, C, R, R, R), t (B,) = 1000 t, cond (B, L, Cc)) -> (B, C_out, R, R, R)``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.input_layer = nn.Linear(self.in_channels, self.model_channels)
        self.out_layer = nn.Linear(self.model_channels, self.out_channels)

    def derived_buffer(self, name: str) -> Tensor | None:
        """What upstream stores as the persistent buffer ``name`` (loading.py checks a file's)."""
        if name != "rope_phases":
            return None
        return rope_phases(grid_coords(self.resolution), self.head_dim)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        side = self.resolution
        h = self.input_layer(x.reshape(*x.shape[:2], -1).transpose(1, 2))
        phases = rope_phases(grid_coords(side, x.device), self.head_dim)
        mod = self.modulation(t)
        h = h.type(self.dtype)
        contexts = block_contexts(cond, self.blocks, self.dtype)
        for block, context in zip(self.blocks, contexts, strict=True):
            h = block(h, mod, context, DENSE_TOKENS, phases)
        h = self.out_layer(F.layer_norm(h.type(x.dtype), h.shape[-1:]))
        return h.transpose(1, 2).reshape(h.shape[0], -1, side, side, side)


class SLatFlowModel(_FlowTrunk):
    """``forward(x SparseTensor (N, C), t, cond (B, L, Cc), concat_cond) -> (N, C_out)``."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.input_layer = nn.Linear(self.in_channels, self.model_channels)
        self.out_layer = nn.Linear(self.model_channels, self.out_channels)

    def forward(
        self, x: SparseTensor, t: Tensor, cond: Tensor, concat_cond: SparseTensor | None = None
    ) -> SparseTensor:
        feats = x.feats
        if concat_cond is not None:
            feats = torch.cat([feats, concat_cond.feats], dim=1)
        h = self.input_layer(feats).type(self.dtype)
        tokens = SparseTokens(x)
        phases = sparse_rope_phases(x, self.head_dim)
        mod = self.modulation(t)
        contexts = block_contexts(cond, self.blocks, self.dtype)
        for block, context in zip(self.blocks, contexts, strict=True):
            h = block(h, mod, context, tokens, phases)
        h = self.out_layer(F.layer_norm(h.type(x.feats.dtype), h.shape[-1:]))
        return x.replace(h)
