"""TRELLIS's structured-latent decoders: the swin trunk and the mesh / Gaussian / RF heads.

Upstream: ``trellis/models/structured_latent_vae/{base,decoder_mesh,decoder_gs,decoder_rf}.py``.

- ``SparseTransformerBase`` (the trunk): ``input_layer`` SparseLinear(latent -> C) + absolute
  position embedding in float32, cast to the torso dtype, then ``num_blocks`` unmodulated
  transformer blocks; with ``attn_mode="swin"`` block i attends inside windows of
  ``window_size`` shifted by ``window_size // 2 * (i % 2)``.
- ``SLatMeshDecoder``: trunk, two ``SparseSubdivideBlock3d`` (C -> C/4 at 2x, C/4 -> C/8 at 4x),
  ``out_layer`` -> the 101 per-voxel FlexiCubes features (53 without colour) at 4x resolution;
  no final LayerNorm. ``MESH_FEATURE_LAYOUT`` names the channel ranges.
- ``SLatGaussianDecoder``: trunk, LayerNorm (no affine), ``out_layer`` -> per voxel
  ``num_gaussians`` x (xyz 3, features_dc 3, scaling 3, rotation 4, opacity 1), blocks in that
  order; ``offset_perturbation`` is a persistent buffer (in the official file): atanh of
  Hammersley points mapped to [-1, 1] and divided by ``voxel_size``, computed here by our own
  code. ``gaussian_parameters`` gives upstream's raw ``Gaussian`` attributes (``_xyz`` etc.).
- ``SLatRadianceFieldDecoder``: same head shape -> trivec (rank, 3, dim), density (rank),
  features_dc (rank, 1, 3); ``radiance_field_parameters`` gives the raw Strivec fields.

Constructors take the checkpoint JSON's ``args``; ``use_fp16`` casts the torso (trunk blocks,
and the mesh decoder's subdivide blocks) to half like the official files; ``dtype`` follows the
torso's weights. Output layers and the input layer stay float32 as upstream stores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from backend.models.sparse import (
    SparseLinear,
    SparseSubdivideBlock3d,
    SparseTensor,
    SparseTokens,
)
from backend.models.trellis.transformer import (
    AbsolutePositionEmbedder,
    TransformerBlock,
    convert_torso,
)


class SparseTransformerBase(nn.Module):
    """The decoders' shared trunk: latent -> position-embedded tokens -> transformer blocks."""

    def __init__(
        self,
        in_channels: int,
        model_channels: int,
        num_blocks: int,
        num_heads: int | None = None,
        num_head_channels: int = 64,
        mlp_ratio: float = 4.0,
        attn_mode: str = "swin",
        window_size: int | None = None,
        pe_mode: str = "ape",
        use_fp16: bool = False,
        use_checkpoint: bool = False,
        qk_rms_norm: bool = False,
    ) -> None:
        super().__init__()
        if pe_mode != "ape":
            raise ValueError(f"pe_mode {pe_mode!r} is not supported (released models use 'ape')")
        if attn_mode not in ("swin", "full"):
            raise ValueError(f"attn_mode {attn_mode!r} is not supported (released: 'swin')")
        if attn_mode == "swin" and not window_size:
            raise ValueError("swin attention needs a window_size")
        del use_checkpoint, use_fp16  # subclasses cast their torso after adding their layers
        self.model_channels = model_channels
        self.num_heads = num_heads or model_channels // num_head_channels
        self.pos_embedder = AbsolutePositionEmbedder(model_channels)
        self.input_layer = SparseLinear(in_channels, model_channels)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                model_channels,
                self.num_heads,
                mlp_ratio=mlp_ratio,
                window=None if attn_mode == "full" else (window_size, window_size // 2 * (i % 2)),
                qk_rms_norm=qk_rms_norm,
            )
            for i in range(num_blocks)
        )

    def torso(self) -> list[nn.Module]:
        """The parts upstream's ``convert_to_fp16`` casts."""
        return [self.blocks]

    def convert_torso(self, dtype: torch.dtype) -> None:
        for part in self.torso():
            convert_torso(part, dtype)

    @property
    def dtype(self) -> torch.dtype:
        """The torso's compute dtype (that of its weights)."""
        return self.blocks[0].attn.to_qkv.weight.dtype if len(self.blocks) else torch.float32

    def trunk(self, x: SparseTensor) -> SparseTensor:
        h = self.input_layer(x)
        feats = (h.feats + self.pos_embedder(x.coords[:, 1:])).to(self.dtype)
        tokens = SparseTokens(h)
        for block in self.blocks:
            feats = block(feats, tokens)
        return h.replace(feats)


# Channel ranges of the mesh decoder's per-voxel features (upstream's SparseFeatures2Mesh):
# 8 corner SDFs, 8 corner deformations (xyz), 21 FlexiCubes weights (beta 12, alpha 8,
# gamma 1), and with colour 8 corners x 6 (RGB + normal map).
MESH_FEATURE_LAYOUT: dict[str, tuple[int, int]] = {
    "sdf": (0, 8),
    "deform": (8, 32),
    "weights": (32, 53),
    "color": (53, 101),
}


class SLatMeshDecoder(SparseTransformerBase):
    """Structured latent (64^3) -> FlexiCubes features on the 8x8 subdivided voxels (256^3)."""

    def __init__(
        self,
        resolution: int,
        model_channels: int,
        latent_channels: int,
        num_blocks: int,
        num_heads: int | None = None,
        num_head_channels: int = 64,
        mlp_ratio: float = 4,
        attn_mode: str = "swin",
        window_size: int = 8,
        pe_mode: str = "ape",
        use_fp16: bool = False,
        use_checkpoint: bool = False,
        qk_rms_norm: bool = False,
        representation_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            latent_channels,
            model_channels,
            num_blocks,
            num_heads=num_heads,
            num_head_channels=num_head_channels,
            mlp_ratio=mlp_ratio,
            attn_mode=attn_mode,
            window_size=window_size,
            pe_mode=pe_mode,
            qk_rms_norm=qk_rms_norm,
        )
        self.resolution = resolution
        self.out_resolution = resolution * 4
        self.use_color = bool((representation_config or {}).get("use_color", False))
        self.out_channels = MESH_FEATURE_LAYOUT["color" if self.use_color else "weights"][1]
        self.upsample = nn.ModuleList(
            [
                SparseSubdivideBlock3d(model_channels, resolution, model_channels // 4),
                SparseSubdivideBlock3d(model_channels // 4, resolution * 2, model_channels // 8),
            ]
        )
        self.out_layer = SparseLinear(model_channels // 8, self.out_channels)
        if use_fp16:
            self.convert_torso(torch.float16)

    def torso(self) -> list[nn.Module]:
        return [self.blocks, self.upsample]

    def forward(self, x: SparseTensor) -> SparseTensor:
        """x (N, latent) at ``resolution`` -> (64 N, 101) at 4x resolution, in x's dtype."""
        h = self.trunk(x)
        for block in self.upsample:
            h = block(h)
        return self.out_layer(h.replace(h.feats.to(x.dtype)))


def _radical_inverse(base: int, index: int) -> float:
    """Digits of ``index`` in ``base`` mirrored behind the point (van der Corput)."""
    value, step = 0.0, 1.0 / base
    inverse = step
    while index > 0:
        value += (index % base) * inverse
        index //= base
        inverse *= step
    return value


def hammersley_points(count: int) -> list[list[float]]:
    """``count`` 3D Hammersley points in [0, 1): (i / count, base-2 and base-3 inverses)."""
    return [[i / count, _radical_inverse(2, i), _radical_inverse(3, i)] for i in range(count)]


def gaussian_offset_perturbation(num_gaussians: int, voxel_size: float) -> Tensor:
    """(G, 3) float32 ``atanh((2 h - 1) / voxel_size)`` of the Hammersley points ``h``.

    Computed on the CPU whatever the default device (as upstream does before moving it).
    """
    points = torch.tensor(hammersley_points(num_gaussians), dtype=torch.float32, device="cpu")
    return torch.atanh((points * 2 - 1) / voxel_size)


def _head_layout(fields: dict[str, tuple[int, ...]]) -> dict[str, tuple[tuple[int, ...], slice]]:
    """Field shapes -> (shape, channel slice), packed in order."""
    layout, start = {}, 0
    for name, shape in fields.items():
        size = math.prod(shape)
        layout[name] = (shape, slice(start, start + size))
        start += size
    return layout


class _NormedHeadDecoder(SparseTransformerBase):
    """Trunk -> float LayerNorm (no affine, eps 1e-5) -> ``out_layer`` (the GS and RF heads)."""

    head_layout: dict[str, tuple[tuple[int, ...], slice]]

    def __init__(
        self,
        resolution: int,
        model_channels: int,
        latent_channels: int,
        num_blocks: int,
        num_heads: int | None = None,
        num_head_channels: int = 64,
        mlp_ratio: float = 4,
        attn_mode: str = "swin",
        window_size: int = 8,
        pe_mode: str = "ape",
        use_fp16: bool = False,
        use_checkpoint: bool = False,
        qk_rms_norm: bool = False,
        representation_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            latent_channels,
            model_channels,
            num_blocks,
            num_heads=num_heads,
            num_head_channels=num_head_channels,
            mlp_ratio=mlp_ratio,
            attn_mode=attn_mode,
            window_size=window_size,
            pe_mode=pe_mode,
            qk_rms_norm=qk_rms_norm,
        )
        self.resolution = resolution
        self.rep_config = dict(representation_config or {})
        self.head_layout = _head_layout(self.head_fields())
        self.out_channels = max(s.stop for _, s in self.head_layout.values())
        self.out_layer = SparseLinear(model_channels, self.out_channels)
        if use_fp16:
            self.convert_torso(torch.float16)

    def head_fields(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def forward(self, x: SparseTensor) -> SparseTensor:
        """x (N, latent) -> raw per-voxel head output (N, out_channels), in x's dtype."""
        h = self.trunk(x)
        feats = h.feats.to(x.dtype)
        return self.out_layer(h.replace(F.layer_norm(feats, feats.shape[-1:])))

    def field(self, out: SparseTensor, name: str, rows: slice) -> Tensor:
        """One named field of the head output for rows ``rows``: (n, *shape)."""
        shape, channels = self.head_layout[name]
        return out.feats[rows, channels].reshape(-1, *shape)


@dataclass(frozen=True)
class GaussianParameters:
    """Upstream's raw ``Gaussian`` attributes for one sample (G Gaussians per voxel, n voxels).

    ``xyz`` (nG, 3) are positions in [0, 1]^3 (upstream's ``_xyz``; ``get_xyz`` subtracts 0.5);
    ``features_dc`` (nG, 1, 3), ``scaling`` (nG, 3), ``rotation`` (nG, 4), ``opacity`` (nG, 1) are
    pre-activation values, already multiplied by their learning-rate factors.
    """

    xyz: Tensor
    features_dc: Tensor
    scaling: Tensor
    rotation: Tensor
    opacity: Tensor


class SLatGaussianDecoder(_NormedHeadDecoder):
    """Structured latent -> ``num_gaussians`` 3D Gaussians per voxel."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer(
            "offset_perturbation",
            gaussian_offset_perturbation(
                self.rep_config["num_gaussians"], self.rep_config["voxel_size"]
            ).to(self.out_layer.weight.device),
        )

    def head_fields(self) -> dict[str, tuple[int, ...]]:
        g = self.rep_config["num_gaussians"]
        return {
            "_xyz": (g, 3),
            "_features_dc": (g, 1, 3),
            "_scaling": (g, 3),
            "_rotation": (g, 4),
            "_opacity": (g, 1),
        }

    def gaussian_parameters(self, out: SparseTensor) -> list[GaussianParameters]:
        """The head output of ``forward`` -> each sample's raw Gaussian parameters."""
        config, lr = self.rep_config, self.rep_config["lr"]
        samples = []
        for rows in out.layout:
            centres = (out.coords[rows, 1:].float() + 0.5) / self.resolution
            offset = self.field(out, "_xyz", rows) * lr["_xyz"]
            if config["perturb_offset"]:
                offset = offset + self.offset_perturbation
            offset = torch.tanh(offset) / self.resolution * 0.5 * config["voxel_size"]
            raw = {
                name: self.field(out, name, rows).flatten(0, 1) * lr[name]
                for name in ("_features_dc", "_scaling", "_rotation", "_opacity")
            }
            samples.append(
                GaussianParameters(
                    xyz=(centres.unsqueeze(1) + offset).flatten(0, 1),
                    features_dc=raw["_features_dc"],
                    scaling=raw["_scaling"],
                    rotation=raw["_rotation"],
                    opacity=raw["_opacity"],
                )
            )
        return samples


@dataclass(frozen=True)
class RadianceFieldParameters:
    """Upstream's raw ``Strivec`` fields for one sample (n voxels, all at one octree depth).

    ``position`` (n, 3) voxel centres ``(coord + 0.5) / resolution`` in [0, 1]; ``depth`` =
    log2(resolution); ``trivec`` (n, rank, 3, dim) with upstream's +1 applied; ``density``
    (n, rank); ``features_dc`` (n, rank, 1, 3). Upstream sets ``density_shift`` to 0.
    """

    position: Tensor
    depth: int
    trivec: Tensor
    density: Tensor
    features_dc: Tensor


class SLatRadianceFieldDecoder(_NormedHeadDecoder):
    """Structured latent -> a rank-``rank`` tri-vector radiance field per voxel."""

    def head_fields(self) -> dict[str, tuple[int, ...]]:
        rank, dim = self.rep_config["rank"], self.rep_config["dim"]
        return {"trivec": (rank, 3, dim), "density": (rank,), "features_dc": (rank, 1, 3)}

    def radiance_field_parameters(self, out: SparseTensor) -> list[RadianceFieldParameters]:
        """The head output of ``forward`` -> each sample's raw Strivec fields."""
        return [
            RadianceFieldParameters(
                position=(out.coords[rows, 1:].float() + 0.5) / self.resolution,
                depth=int(math.log2(self.resolution)),
                trivec=self.field(out, "trivec", rows) + 1,
                density=self.field(out, "density", rows),
                features_dc=self.field(out, "features_dc", rows),
            )
            for rows in out.layout
        ]
