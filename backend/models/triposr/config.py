"""TripoSR's architecture sizes, read from the official ``config.yaml`` of ``stabilityai/TripoSR``.

The official file names one upstream class per network part (``*_cls``) and a block of sizes for
each (``image_tokenizer``, ``tokenizer``, ``backbone``, ``post_processor``, ``decoder``,
``renderer``); ``backbone.in_channels`` is an OmegaConf interpolation, so the file is resolved
with OmegaConf. The image tokenizer's sizes are not in that file: upstream fetches the
``config.json`` of ``facebook/dino-vitb16`` from the hub. We never touch the network: the known
DINO configs are built here from their published values, and a local folder holding a ViT
``config.json`` (how the tiny test models of testing.py describe themselves) is read instead
when the name is a path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared_protocol.errors import ErrorCode, ProtocolError

# The upstream classes a TripoSR config may name; anything else is a different model.
EXPECTED_CLASSES: dict[str, str] = {
    "image_tokenizer_cls": "tsr.models.tokenizers.image.DINOSingleImageTokenizer",
    "tokenizer_cls": "tsr.models.tokenizers.triplane.Triplane1DTokenizer",
    "backbone_cls": "tsr.models.transformer.transformer_1d.Transformer1D",
    "post_processor_cls": "tsr.models.network_utils.TriplaneUpsampleNetwork",
    "decoder_cls": "tsr.models.network_utils.NeRFMLP",
    "renderer_cls": "tsr.models.nerf_renderer.TriplaneNeRFRenderer",
}


@dataclass(frozen=True)
class VitConfig:
    """A ViT image encoder's sizes (field meanings as in a transformers ``ViTConfig``)."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True
    hidden_act: str = "gelu"

    @classmethod
    def from_json(cls, path: Path) -> VitConfig:
        """Read the fields we use from a transformers ViT ``config.json``."""
        data = json.loads(path.read_text())
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        """The ``config.json`` form (``model_type`` vit), readable by ``from_json``."""
        data: dict[str, Any] = {"model_type": "vit", "architectures": ["ViTModel"]}
        data.update(self.__dict__)
        return data


# Published values of the hub configs TripoSR's image tokenizer may name.
KNOWN_VIT_CONFIGS: dict[str, VitConfig] = {
    "facebook/dino-vitb16": VitConfig(),
    "facebook/dino-vits16": VitConfig(
        hidden_size=384, num_attention_heads=6, intermediate_size=1536
    ),
}


@dataclass(frozen=True)
class TripoSRConfig:
    """Every size and switch of the network and of its field query, one flat record."""

    cond_image_size: int = 512
    vit: VitConfig = field(default_factory=VitConfig)
    vit_name: str = "facebook/dino-vitb16"
    # Triplane tokens: 3 planes of plane_size^2 tokens with token_channels each.
    plane_size: int = 32
    token_channels: int = 1024
    # 1D transformer backbone (upstream Transformer1D with BasicTransformerBlock).
    num_attention_heads: int = 16
    attention_head_dim: int = 64
    num_layers: int = 16
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    attention_bias: bool = False
    activation_fn: str = "geglu"
    only_cross_attention: bool = False
    double_self_attention: bool = False
    norm_elementwise_affine: bool = True
    # Triplane upsampler (ConvTranspose2d, kernel 2 stride 2): token_channels -> triplane_channels.
    triplane_channels: int = 40
    # NeRF MLP decoder.
    decoder_in_channels: int = 120
    decoder_neurons: int = 64
    decoder_hidden_layers: int = 9
    decoder_activation: str = "silu"
    decoder_bias: bool = True
    # Field query (upstream's renderer block).
    radius: float = 0.87
    feature_reduction: str = "concat"
    density_activation: str = "exp"
    density_bias: float = -1.0
    color_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        problems = []
        if self.feature_reduction not in ("concat", "mean"):
            problems.append(f"renderer.feature_reduction {self.feature_reduction!r}")
        planes = 3 if self.feature_reduction == "concat" else 1
        if self.decoder_in_channels != planes * self.triplane_channels:
            problems.append(
                f"decoder.in_channels {self.decoder_in_channels} != "
                f"{planes} x post_processor.out_channels {self.triplane_channels}"
            )
        if self.cross_attention_dim != self.vit.hidden_size:
            problems.append(
                f"backbone.cross_attention_dim {self.cross_attention_dim} != image tokenizer "
                f"width {self.vit.hidden_size}"
            )
        if self.token_channels % self.norm_num_groups:
            problems.append("backbone.in_channels is not a multiple of norm_num_groups")
        if self.activation_fn not in ("geglu", "gelu", "gelu-approximate", "geglu-approximate"):
            problems.append(f"backbone.activation_fn {self.activation_fn!r}")
        if self.decoder_activation not in ("relu", "silu"):
            problems.append(f"decoder.activation {self.decoder_activation!r}")
        if problems:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                "TripoSR config is inconsistent: " + "; ".join(problems),
                hint="Re-download the model files with `dreamcad-backend download triposr`.",
            )

    @property
    def inner_dim(self) -> int:
        """Width of the transformer blocks (heads x head size)."""
        return self.num_attention_heads * self.attention_head_dim

    @classmethod
    def from_yaml(cls, path: Path) -> TripoSRConfig:
        """Read an official ``config.yaml`` (OmegaConf interpolations resolved)."""
        from omegaconf import OmegaConf

        try:
            raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as error:  # omegaconf raises many types; all mean a bad file
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"cannot read TripoSR config {path}: {error}",
                hint="Re-download the model files with `dreamcad-backend download triposr`.",
            ) from error
        if not isinstance(raw, dict):
            raise ProtocolError(ErrorCode.MODEL_FAILED, f"{path} does not hold a mapping")
        return cls.from_dict(raw, base_dir=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base_dir: Path | None = None) -> TripoSRConfig:
        """Build from the official layout; ``base_dir`` resolves a relative ViT config path.

        OmegaConf interpolations (``${tokenizer.num_channels}``) are resolved first.
        """
        from omegaconf import OmegaConf

        raw = OmegaConf.to_container(OmegaConf.create(raw), resolve=True)  # type: ignore[assignment]
        for key, expected in EXPECTED_CLASSES.items():
            if raw.get(key, expected) != expected:
                raise ProtocolError(
                    ErrorCode.MODEL_FAILED,
                    f"config names {key}={raw.get(key)!r}, not TripoSR's {expected!r}",
                    hint="Point the TripoSR model at a folder laid out like stabilityai/TripoSR.",
                )
        try:
            tokenizer = raw["tokenizer"]
            backbone = raw["backbone"]
            post = raw["post_processor"]
            decoder = raw["decoder"]
            renderer = raw["renderer"]
            vit_name = str(raw.get("image_tokenizer", {}).get(
                "pretrained_model_name_or_path", "facebook/dino-vitb16"
            ))
            vit = resolve_vit_config(vit_name, base_dir)
            in_channels = backbone.get("in_channels", tokenizer["num_channels"])
            if in_channels != tokenizer["num_channels"] or post["in_channels"] != in_channels:
                raise KeyError("backbone/post_processor in_channels differ from the tokens")
            return cls(
                cond_image_size=int(raw["cond_image_size"]),
                vit=vit,
                vit_name=vit_name,
                plane_size=int(tokenizer["plane_size"]),
                token_channels=int(tokenizer["num_channels"]),
                num_attention_heads=int(backbone.get("num_attention_heads", 16)),
                attention_head_dim=int(backbone.get("attention_head_dim", 88)),
                num_layers=int(backbone.get("num_layers", 1)),
                cross_attention_dim=int(backbone["cross_attention_dim"]),
                norm_num_groups=int(backbone.get("norm_num_groups", 32)),
                attention_bias=bool(backbone.get("attention_bias", False)),
                activation_fn=str(backbone.get("activation_fn", "geglu")),
                only_cross_attention=bool(backbone.get("only_cross_attention", False)),
                double_self_attention=bool(backbone.get("double_self_attention", False)),
                norm_elementwise_affine=bool(backbone.get("norm_elementwise_affine", True)),
                triplane_channels=int(post["out_channels"]),
                decoder_in_channels=int(decoder["in_channels"]),
                decoder_neurons=int(decoder["n_neurons"]),
                decoder_hidden_layers=int(decoder["n_hidden_layers"]),
                decoder_activation=str(decoder.get("activation", "relu")),
                decoder_bias=bool(decoder.get("bias", True)),
                radius=float(renderer["radius"]),
                feature_reduction=str(renderer.get("feature_reduction", "concat")),
                density_activation=str(renderer.get("density_activation", "trunc_exp")),
                density_bias=float(renderer.get("density_bias", -1.0)),
                color_activation=str(renderer.get("color_activation", "sigmoid")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"TripoSR config lacks or mistypes a field: {error}",
                hint="Re-download the model files with `dreamcad-backend download triposr`.",
            ) from error

    def to_dict(self) -> dict[str, Any]:
        """The official ``config.yaml`` layout (inverse of ``from_dict``)."""
        return {
            "cond_image_size": self.cond_image_size,
            "image_tokenizer_cls": EXPECTED_CLASSES["image_tokenizer_cls"],
            "image_tokenizer": {"pretrained_model_name_or_path": self.vit_name},
            "tokenizer_cls": EXPECTED_CLASSES["tokenizer_cls"],
            "tokenizer": {"plane_size": self.plane_size, "num_channels": self.token_channels},
            "backbone_cls": EXPECTED_CLASSES["backbone_cls"],
            "backbone": {
                "in_channels": self.token_channels,
                "num_attention_heads": self.num_attention_heads,
                "attention_head_dim": self.attention_head_dim,
                "num_layers": self.num_layers,
                "cross_attention_dim": self.cross_attention_dim,
                "norm_num_groups": self.norm_num_groups,
            },
            "post_processor_cls": EXPECTED_CLASSES["post_processor_cls"],
            "post_processor": {
                "in_channels": self.token_channels,
                "out_channels": self.triplane_channels,
            },
            "decoder_cls": EXPECTED_CLASSES["decoder_cls"],
            "decoder": {
                "in_channels": self.decoder_in_channels,
                "n_neurons": self.decoder_neurons,
                "n_hidden_layers": self.decoder_hidden_layers,
                "activation": self.decoder_activation,
            },
            "renderer_cls": EXPECTED_CLASSES["renderer_cls"],
            "renderer": {
                "radius": self.radius,
                "feature_reduction": self.feature_reduction,
                "density_activation": self.density_activation,
                "density_bias": self.density_bias,
                "num_samples_per_ray": 128,
            },
        }


def resolve_vit_config(name: str, base_dir: Path | None = None) -> VitConfig:
    """The ViT sizes for ``name``: a known hub id, or a local folder/file with ``config.json``."""
    if name in KNOWN_VIT_CONFIGS:
        return KNOWN_VIT_CONFIGS[name]
    candidate = Path(name)
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    if candidate.is_dir():
        candidate = candidate / "config.json"
    if candidate.is_file():
        return VitConfig.from_json(candidate)
    raise ProtocolError(
        ErrorCode.MODEL_FAILED,
        f"unknown image tokenizer {name!r}: not one of {sorted(KNOWN_VIT_CONFIGS)} and no "
        "local config.json there",
        hint="Use the official config.yaml of stabilityai/TripoSR.",
    )

