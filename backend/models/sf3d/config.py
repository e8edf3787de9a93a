"""SF3D's configuration, read from the official ``config.yaml`` into typed dataclasses.

The official file names each part by its upstream class path (``*_cls``) plus a dict of
options; only the architectures SF3D ships with are accepted. The image encoders are named by
their hub ids (``facebook/dinov2-large``, open_clip ``ViT-B-32``); their architectures are
built here from local tables, never fetched. Tiny test configs (testing.py) may give the encoder
sizes inline (``image_tokenizer.dino``, ``image_estimator.clip``): upstream ignores unknown keys,
so such a file still loads there too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shared_protocol.errors import ErrorCode, ProtocolError


@dataclass(frozen=True)
class DinoConfig:
    """A DINOv2 ViT (the Hugging Face ``Dinov2Config`` fields SF3D uses)."""

    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 14
    image_size: int = 518
    layer_norm_eps: float = 1e-6


@dataclass(frozen=True)
class ClipConfig:
    """An open_clip ViT CLIP (both towers: the checkpoint stores the text tower too)."""

    embed_dim: int = 512
    vision_width: int = 768
    vision_layers: int = 12
    vision_patch_size: int = 32
    image_size: int = 224
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    context_length: int = 77
    vocab_size: int = 49408
    head_width: int = 64  # vision heads = vision_width // head_width


# Architectures named in official configs, built locally (values from the published configs).
DINO_ARCHITECTURES = {
    "facebook/dinov2-small": DinoConfig(384, 12, 6),
    "facebook/dinov2-base": DinoConfig(768, 12, 12),
    "facebook/dinov2-large": DinoConfig(1024, 24, 16),
}
CLIP_ARCHITECTURES = {"ViT-B-32": ClipConfig()}


@dataclass(frozen=True)
class HeadConfig:
    """One output head: MLP depth, width of its output, activation and bias on the output."""

    name: str
    out_channels: int
    n_hidden_layers: int
    output_activation: str | None = None
    output_bias: float = 0.0
    add_to_decoder_features: bool = False
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BackboneConfig:
    num_attention_heads: int = 16
    attention_head_dim: int = 64
    raw_triplane_channels: int = 1024
    triplane_channels: int = 1024
    raw_image_channels: int = 1024
    num_latents: int = 1792
    num_blocks: int = 4
    num_basic_blocks: int = 3
    norm_num_groups: int = 32
    attention_bias: bool = False
    norm_x_input: bool = False
    cross_attention_dim: int = 1024
    mix_latent: bool = True


@dataclass(frozen=True)
class SF3DConfig:
    """Everything the networks, mesh extraction and camera need; defaults = the official file."""

    cond_image_size: int = 512
    isosurface_resolution: int = 160
    isosurface_threshold: float = 10.0
    radius: float = 0.87
    background_color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    default_fovy_deg: float = 40.0
    default_distance: float = 1.6
    camera_in_channels: int = 25
    camera_out_channels: int = 768
    camera_conditions: tuple[str, ...] = ("c2w_cond", "intrinsic_normed_cond")
    dino: DinoConfig = DinoConfig()
    modulation_cond_dim: int = 768
    plane_size: int = 96
    triplane_channels: int = 1024
    backbone: BackboneConfig = BackboneConfig()
    upsample_out_channels: int = 40
    upsample_scale: int = 4
    upsample_conv_layers: int = 4
    upsample_kernel_size: int = 3
    decoder_in_channels: int = 120
    decoder_neurons: int = 64
    decoder_activation: str = "silu"
    decoder_heads: tuple[HeadConfig, ...] = (
        HeadConfig("density", 1, 2, "trunc_exp", -1.0),
        HeadConfig("features", 3, 3, "sigmoid"),
        HeadConfig("perturb_normal", 3, 3, "normalize_channel_last"),
        HeadConfig("vertex_offset", 3, 2),
    )
    clip: ClipConfig = ClipConfig()
    estimator_distribution: str = "beta"
    estimator_distribution_eval: str = "mode"
    estimator_activation: str = "relu"
    estimator_hidden: int = 512
    estimator_heads: tuple[HeadConfig, ...] = (
        HeadConfig("roughness", 1, 3, "linear", 1.0, True, (-1, 1, 1)),
        HeadConfig("metallic", 1, 3, "linear", 1.0, True, (-1, 1, 1)),
    )
    global_triplane_features: int = 1024
    global_layers: int = 2
    global_hidden: int = 512
    global_activation: str = "relu"
    global_pool: str = "max"
    global_heads: tuple[HeadConfig, ...] = (
        HeadConfig("sg_amplitudes", 24, 3, "softplus", 1.0, False, (-1, 24, 1)),
    )


EXPECTED_CLASSES = {
    "camera_embedder_cls": "sf3d.models.camera.LinearCameraEmbedder",
    "image_tokenizer_cls": "sf3d.models.tokenizers.image.DINOV2SingleImageTokenizer",
    "tokenizer_cls": "sf3d.models.tokenizers.triplane.TriplaneLearnablePositionalEmbedding",
    "backbone_cls": "sf3d.models.transformers.backbone.TwoStreamInterleaveTransformer",
    "post_processor_cls": "sf3d.models.network.PixelShuffleUpsampleNetwork",
    "decoder_cls": "sf3d.models.network.MaterialMLP",
    "image_estimator_cls": (
        "sf3d.models.image_estimator.clip_based_estimator.ClipBasedHeadEstimator"
    ),
    "global_estimator_cls": "sf3d.models.global_estimator.multi_head_estimator.MultiHeadEstimator",
}


def _bad(message: str, key: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.MODEL_FAILED,
        f"SF3D config.yaml: {message}",
        field=f"config.{key}",
        hint="The weights folder must hold the official stabilityai/stable-fast-3d config.yaml.",
    )


def _pick(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Keep the keys ``cls`` knows (upstream ignores the rest too); reject wrong types early."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names and k != where}


def _heads(raw: list[dict[str, Any]], bias_key: str) -> tuple[HeadConfig, ...]:
    heads = []
    for head in raw:
        heads.append(
            HeadConfig(
                name=str(head["name"]),
                out_channels=int(head["out_channels"]),
                n_hidden_layers=int(head["n_hidden_layers"]),
                output_activation=head.get("output_activation"),
                output_bias=float(head.get(bias_key, 0.0)),
                add_to_decoder_features=bool(head.get("add_to_decoder_features", False)),
                shape=tuple(head["shape"]) if head.get("shape") else None,
            )
        )
    return tuple(heads)


def config_from_dict(raw: dict[str, Any]) -> SF3DConfig:
    """Build an :class:`SF3DConfig` from the official YAML's (resolved) mapping."""
    for key, expected in EXPECTED_CLASSES.items():
        if raw.get(key) != expected:
            raise _bad(f"{key} is {raw.get(key)!r}; this implementation runs {expected}", key)
    camera = raw.get("camera_embedder", {})
    tokenizer_image = raw.get("image_tokenizer", {})
    dino_name = tokenizer_image.get("pretrained_model_name_or_path", "facebook/dinov2-large")
    if "dino" in tokenizer_image:
        dino = DinoConfig(**_pick(DinoConfig, dict(tokenizer_image["dino"]), ""))
    elif dino_name in DINO_ARCHITECTURES:
        dino = DINO_ARCHITECTURES[dino_name]
    else:
        raise _bad(f"unknown DINOv2 {dino_name!r}", "image_tokenizer")
    estimator = raw.get("image_estimator", {})
    clip_name = estimator.get("model", "ViT-B-32")
    if "clip" in estimator:
        clip = ClipConfig(**_pick(ClipConfig, dict(estimator["clip"]), ""))
    elif clip_name in CLIP_ARCHITECTURES:
        clip = CLIP_ARCHITECTURES[clip_name]
    else:
        raise _bad(f"unknown CLIP {clip_name!r}", "image_estimator.model")
    tokenizer = raw.get("tokenizer", {})
    upsample = raw.get("post_processor", {})
    decoder = raw.get("decoder", {})
    global_estimator = raw.get("global_estimator", {})
    defaults = SF3DConfig()
    top = {
        k: raw[k]
        for k in ("cond_image_size", "isosurface_resolution", "isosurface_threshold", "radius",
                  "default_fovy_deg", "default_distance")
        if k in raw
    }
    return SF3DConfig(
        **top,
        background_color=tuple(raw.get("background_color", defaults.background_color)),
        camera_in_channels=int(camera.get("in_channels", 25)),
        camera_out_channels=int(camera.get("out_channels", 768)),
        camera_conditions=tuple(camera.get("conditions", defaults.camera_conditions)),
        dino=dino,
        modulation_cond_dim=int(tokenizer_image.get("modulation_cond_dim", 768)),
        plane_size=int(tokenizer.get("plane_size", 96)),
        triplane_channels=int(tokenizer.get("num_channels", 1024)),
        backbone=BackboneConfig(**_pick(BackboneConfig, dict(raw.get("backbone", {})), "")),
        upsample_out_channels=int(upsample.get("out_channels", 40)),
        upsample_scale=int(upsample.get("scale_factor", 4)),
        upsample_conv_layers=int(upsample.get("conv_layers", 4)),
        upsample_kernel_size=int(upsample.get("conv_kernel_size", 3)),
        decoder_in_channels=int(decoder.get("in_channels", 120)),
        decoder_neurons=int(decoder.get("n_neurons", 64)),
        decoder_activation=str(decoder.get("activation", "silu")),
        decoder_heads=_heads(decoder.get("heads", []), "out_bias") or defaults.decoder_heads,
        clip=clip,
        estimator_distribution=str(estimator.get("distribution", "beta")),
        estimator_distribution_eval=str(estimator.get("distribution_eval", "mode")),
        estimator_activation=str(estimator.get("activation", "relu")),
        estimator_hidden=int(estimator.get("hidden_features", 512)),
        estimator_heads=_heads(estimator.get("heads", []), "output_bias")
        or defaults.estimator_heads,
        global_triplane_features=int(global_estimator.get("triplane_features", 1024)),
        global_layers=int(global_estimator.get("n_layers", 2)),
        global_hidden=int(global_estimator.get("hidden_features", 512)),
        global_activation=str(global_estimator.get("activation", "relu")),
        global_pool=str(global_estimator.get("pool", "max")),
        global_heads=_heads(global_estimator.get("heads", []), "output_bias")
        or defaults.global_heads,
    )


def load_config(path: Path) -> SF3DConfig:
    """Read the official ``config.yaml`` (OmegaConf, interpolations resolved)."""
    from omegaconf import OmegaConf

    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as error:  # YAML syntax or interpolation errors
        raise _bad(f"cannot be read: {error}", "yaml") from error
    if not isinstance(raw, dict):
        raise _bad("is not a mapping", "yaml")
    return config_from_dict(raw)  # type: ignore[arg-type]

