"""CLIP ViT (open_clip layout) and SF3D's material estimator built on its image embedding.

The official checkpoint carries the whole open_clip model under ``image_estimator.model`` -
text tower included, although only the image tower runs - so both towers exist here for a
strict load. The estimator's heads turn the CLIP image embedding into a Beta distribution per
material value (roughness, metallic) and report its mode: one scalar per image.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as nnf

from backend.models.sf3d.config import ClipConfig, HeadConfig
from backend.models.sf3d.heads import activation

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class MultiheadAttentionWeights(nn.Module):
    """``nn.MultiheadAttention``'s parameter layout (packed in-projection), run through SDPA."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = nnf.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        shape = (batch, tokens, self.heads, width // self.heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        out = nnf.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width))


class Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, width * 4)
        self.c_proj = nn.Linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(nnf.gelu(self.c_fc(x)))


class ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MultiheadAttentionWeights(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = Mlp(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(width, heads) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTower(nn.Module):
    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        width = config.vision_width
        grid = config.image_size // config.vision_patch_size
        self.conv1 = nn.Conv2d(
            3, width, config.vision_patch_size, stride=config.vision_patch_size, bias=False
        )
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(
            width, config.vision_layers, width // config.head_width
        )
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, config.embed_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised pixels -> (B, embed_dim) image embedding (class token)."""
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class Clip(nn.Module):
    """open_clip's ``CLIP``: the vision tower plus the (unused here) text tower's weights."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.visual = VisionTower(config)
        self.token_embedding = nn.Embedding(config.vocab_size, config.text_width)
        self.positional_embedding = nn.Parameter(
            torch.zeros(config.context_length, config.text_width)
        )
        self.transformer = Transformer(config.text_width, config.text_layers, config.text_heads)
        self.ln_final = nn.LayerNorm(config.text_width)
        self.text_projection = nn.Parameter(torch.zeros(config.text_width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.zeros(()))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)


def _act(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.SiLU()


def _mlp(width: int, layers: int, act: str) -> nn.Sequential:
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(width, width), _act(act)]
    return nn.Sequential(*modules)


class MaterialEstimator(nn.Module):
    """CLIP image embedding -> per-image roughness and metallic (Beta mode, as upstream).

    Each head is [shared MLP, MLP -> alpha logit, MLP -> beta logit] (checkpoint indices 0-2).
    """

    def __init__(
        self,
        config: ClipConfig,
        heads: tuple[HeadConfig, ...],
        hidden: int,
        act: str,
        distribution: str,
        distribution_eval: str,
    ) -> None:
        super().__init__()
        if distribution != "beta" or distribution_eval not in ("mode", "mean"):
            raise ValueError(
                f"unsupported estimator distribution {distribution}/{distribution_eval}"
            )
        self.specs = heads
        self.distribution_eval = distribution_eval
        self.model = Clip(config)
        self.heads = nn.ModuleDict()
        for head in heads:
            branches = [_mlp(hidden, head.n_hidden_layers, act)]
            for _ in range(2):
                branches.append(
                    nn.Sequential(nn.Linear(hidden, hidden), _act(act), nn.Linear(hidden, 1))
                )
            self.heads[head.name] = nn.ModuleList(branches)
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.image_size = config.image_size

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, Nv, H, W, 3) masked colour in [0, 1] -> {name: value shaped by the head spec}."""
        pixels = images.flatten(0, 1).permute(0, 3, 1, 2).contiguous()
        pixels = nnf.interpolate(
            pixels, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        features = self.model.encode_image((pixels - self.clip_mean) / self.clip_std)
        outputs: dict[str, torch.Tensor] = {}
        for head in self.specs:
            shared, alpha_branch, beta_branch = self.heads[head.name]
            hidden = shared(features)
            alpha = nnf.softplus(alpha_branch(hidden).squeeze(-1) + head.output_bias)
            beta = nnf.softplus(beta_branch(hidden).squeeze(-1) + head.output_bias)
            dist = torch.distributions.Beta(alpha, beta)
            value = dist.mode if self.distribution_eval == "mode" else dist.mean
            value = activation(head.output_activation)(value)
            if head.shape:
                value = value.reshape(*head.shape)
            outputs[head.name] = value
        return outputs
