"""The whole SF3D network: image + camera -> triplanes -> fields; key names as the checkpoint.

``SF3DNetwork`` owns the parts under the attribute names of the official ``model.safetensors``
(``image_tokenizer``, ``tokenizer``, ``camera_embedder``, ``backbone``, ``post_processor``,
``decoder``, ``image_estimator``, ``global_estimator`` and the ``bbox`` buffer) and exposes the
steps the adapter runs one by one: camera, triplanes (``scene_codes``), field queries and the
per-image material / illumination estimates.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.sf3d.backbone import TwoStreamTransformer
from backend.models.sf3d.clip import MaterialEstimator
from backend.models.sf3d.config import SF3DConfig
from backend.models.sf3d.dinov2 import ImageTokenizer
from backend.models.sf3d.heads import (
    GlobalEstimator,
    LinearCameraEmbedder,
    MaterialMLP,
    PixelShuffleUpsampler,
    TriplaneTokens,
)


def default_camera(config: SF3DConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed conditioning camera: (4, 4) camera-to-world, (3, 3) normalised intrinsics.

    The camera sits on +X at ``default_distance`` looking at the origin with +Z up (OpenGL
    convention), so image right is model +Y.
    """
    d = config.default_distance
    c2w = torch.tensor(
        [[0.0, 0.0, 1.0, d], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    size = config.cond_image_size
    focal = 0.5 * size / math.tan(0.5 * math.radians(config.default_fovy_deg))
    # Normalised by the image size: focal/size on the diagonal, principal point 0.5.
    intrinsic = torch.tensor(
        [[focal / size, 0.0, 0.5], [0.0, focal / size, 0.5], [0.0, 0.0, 1.0]],
        dtype=torch.float32,
    )
    return c2w, intrinsic


class SF3DNetwork(nn.Module):
    def __init__(self, config: SF3DConfig) -> None:
        super().__init__()
        self.config = config
        self.image_tokenizer = ImageTokenizer(config.dino, config.modulation_cond_dim)
        self.tokenizer = TriplaneTokens(config.plane_size, config.triplane_channels)
        self.camera_embedder = LinearCameraEmbedder(
            config.camera_in_channels, config.camera_out_channels
        )
        self.backbone = TwoStreamTransformer(config.backbone)
        self.post_processor = PixelShuffleUpsampler(
            config.triplane_channels, config.upsample_out_channels, config.upsample_scale,
            config.upsample_conv_layers, config.upsample_kernel_size,
        )
        self.decoder = MaterialMLP(
            config.decoder_in_channels, config.decoder_neurons, config.decoder_activation,
            config.decoder_heads,
        )
        self.image_estimator = MaterialEstimator(
            config.clip, config.estimator_heads, config.estimator_hidden,
            config.estimator_activation, config.estimator_distribution,
            config.estimator_distribution_eval,
        )
        self.global_estimator = GlobalEstimator(
            config.global_triplane_features, config.global_layers, config.global_hidden,
            config.global_activation, config.global_pool, config.global_heads,
        )
        r = config.radius
        self.register_buffer("bbox", torch.tensor([[-r, -r, -r], [r, r, r]], dtype=torch.float32))

    def scene_codes(
        self, rgb: torch.Tensor, c2w: torch.Tensor, intrinsic_normed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Nv, H, W, 3) background-composited views + cameras -> (triplanes, raw planes).

        Returns (B, 3, Co, P*s, P*s) decoded-ready triplanes and (B, 3, C, P, P) backbone planes.
        """
        condition = self.camera_embedder(c2w, intrinsic_normed)
        image_tokens = self.image_tokenizer(rgb.permute(0, 1, 4, 2, 3), condition)
        batch, views, channels, count = image_tokens.shape
        image_tokens = image_tokens.permute(0, 1, 3, 2).reshape(batch, views * count, channels)
        tokens = self.backbone(self.tokenizer(batch), image_tokens)
        raw_planes = self.tokenizer.detokenize(tokens)
        return self.post_processor(raw_planes), raw_planes

    def query_triplane(self, points: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
        """Bilinear triplane features at model-space points: (N, 3), (3, C, H, W) -> (N, 3C).

        Points are scaled from [-radius, radius] to grid_sample's [-1, 1]; planes are the
        (x, y), (x, z), (y, z) projections, features concatenated plane by plane.
        """
        r = self.config.radius
        # Same float ops as upstream's scale_tensor, so coordinates round identically.
        coords = (points + r) / (2 * r) * 2.0 - 1.0
        grid = torch.stack([coords[:, [0, 1]], coords[:, [0, 2]], coords[:, [1, 2]]], dim=0)
        sampled = nnf.grid_sample(
            planes.float(), grid[:, None].float(), mode="bilinear", align_corners=True
        )  # (3, C, 1, N)
        return sampled[:, :, 0].permute(2, 0, 1).reshape(points.shape[0], -1)

    def decode(
        self, points: torch.Tensor, planes: torch.Tensor, include: tuple[str, ...] | None = None,
        exclude: tuple[str, ...] = (),
    ) -> dict[str, torch.Tensor]:
        """Decoder heads at points: {density (N,1), features (N,3), perturb_normal, ...}."""
        return self.decoder(self.query_triplane(points, planes), include, exclude)

    def estimate_materials(self, rgb: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image roughness/metallic from the masked colour views (B, Nv, H, W, 3|1)."""
        return self.image_estimator(rgb * mask)

    def estimate_illumination(self, raw_planes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Spherical-Gaussian amplitudes of the input's lighting (what delighting removed)."""
        return self.global_estimator(raw_planes)
