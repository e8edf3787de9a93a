"""Hunyuan3D-2 shape model configuration, read from the official ``config.yaml`` of a variant.

Each hub subfolder (``hunyuan3d-dit-v2-mini-turbo/`` and so on) holds a ``config.yaml`` with five
sections: ``model`` (the flow DiT), ``vae`` (the ShapeVAE decoder), ``conditioner`` (DINOv2 with
its full ``Dinov2Config`` inline, so nothing is fetched), ``scheduler`` (plain or consistency
flow matching) and ``image_processor``. We read only the fields that shape the networks and the
sampler; ``target`` class paths are used to tell the scheduler kinds and the multi-view
conditioner apart, never imported. :func:`tiny_raw_config` is a tiny config in the same layout
(the sizes of the parity data in tests/data/hunyuan) for tests and smoke benchmarks. Light: yaml
only, so the adapter's card and checks can read :data:`VIEW_INDEX` without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared_protocol.errors import ErrorCode, ProtocolError

# The multi-view conditioner's slots (its fixed view embedding), named as upstream names them.
VIEW_INDEX = {"front": 0, "left": 1, "back": 2, "right": 3}


@dataclass(frozen=True)
class DitConfig:
    """The flow-matching DiT (double-stream then single-stream blocks, FLUX style)."""

    in_channels: int = 64
    context_in_dim: int = 1536
    hidden_size: int = 1024
    mlp_ratio: float = 4.0
    num_heads: int = 16
    depth: int = 16
    depth_single_blocks: int = 32
    axes_dim: tuple[int, ...] = (64,)
    theta: int = 10_000
    qkv_bias: bool = True
    time_factor: float = 1000.0
    guidance_embed: bool = False


@dataclass(frozen=True)
class VaeConfig:
    """The ShapeVAE decoder: latent transformer plus the cross-attention occupancy decoder."""

    num_latents: int = 3072
    embed_dim: int = 64
    width: int = 1024
    heads: int = 16
    num_decoder_layers: int = 16
    geo_decoder_downsample_ratio: int = 1
    geo_decoder_mlp_expand_ratio: int = 4
    geo_decoder_ln_post: bool = True
    num_freqs: int = 8
    include_pi: bool = True
    qkv_bias: bool = True
    qk_norm: bool = False
    scale_factor: float = 1.0


@dataclass(frozen=True)
class ConditionerConfig:
    """DINOv2 image encoder: ``dinov2`` is the inline transformers ``Dinov2Config`` dict."""

    dinov2: dict[str, Any]
    image_size: int = 224
    use_cls_token: bool = True
    multi_view: bool = False
    view_num: int = 4


@dataclass(frozen=True)
class SchedulerConfig:
    """``consistency`` is the step-distilled (turbo) scheduler with ``pcm_timesteps`` anchors."""

    num_train_timesteps: int = 1000
    consistency: bool = False
    pcm_timesteps: int = 50
    shift: float = 1.0


@dataclass(frozen=True)
class ImageProcessorConfig:
    size: int = 512
    border_ratio: float = 0.15


@dataclass(frozen=True)
class ShapeConfig:
    dit: DitConfig
    vae: VaeConfig
    conditioner: ConditionerConfig
    scheduler: SchedulerConfig
    image_processor: ImageProcessorConfig = field(default_factory=ImageProcessorConfig)


def _params(section: dict[str, Any], known: type, path: Path, name: str) -> dict[str, Any]:
    params = dict(section.get("params") or {})
    fields = known.__dataclass_fields__  # type: ignore[attr-defined]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{path}: section {name!r} has parameters this version does not know: {unknown}",
            hint="The weights folder is not a Hunyuan3D-2 shape variant this backend supports.",
        )
    if "axes_dim" in params:
        params["axes_dim"] = tuple(params["axes_dim"])
    return params


def parse_shape_config(raw: dict[str, Any], path: Path = Path("config.yaml")) -> ShapeConfig:
    """Build a :class:`ShapeConfig` from the parsed YAML mapping of an official config file."""
    for section in ("model", "vae", "conditioner", "scheduler"):
        if section not in raw:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{path} has no {section!r} section",
                hint="Re-download the model: the config file is incomplete.",
            )
    model_params = dict(raw["model"].get("params") or {})
    model_params.pop("ckpt_path", None)
    dit = DitConfig(**_params({"params": model_params}, DitConfig, path, "model"))
    vae = VaeConfig(**_params(raw["vae"], VaeConfig, path, "vae"))

    encoder = (raw["conditioner"].get("params") or {}).get("main_image_encoder") or {}
    kwargs = dict(encoder.get("kwargs") or {})
    if "config" not in kwargs:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{path}: the image encoder has no inline DINOv2 config",
            hint="Only configs that carry the encoder's config inline can load offline.",
        )
    conditioner = ConditionerConfig(
        dinov2=dict(kwargs["config"]),
        image_size=int(kwargs.get("image_size", 224)),
        use_cls_token=bool(kwargs.get("use_cls_token", True)),
        multi_view=encoder.get("type") == "DinoImageEncoderMV",
        view_num=int(kwargs.get("view_num", 4)),
    )

    scheduler_section = raw["scheduler"]
    scheduler_params = dict(scheduler_section.get("params") or {})
    scheduler = SchedulerConfig(
        num_train_timesteps=int(scheduler_params.get("num_train_timesteps", 1000)),
        consistency="Consistency" in str(scheduler_section.get("target", "")),
        pcm_timesteps=int(scheduler_params.get("pcm_timesteps", 50)),
        shift=float(scheduler_params.get("shift", 1.0)),
    )
    processor_params = dict((raw.get("image_processor") or {}).get("params") or {})
    processor = ImageProcessorConfig(
        size=int(processor_params.get("size", 512)),
        border_ratio=float(processor_params.get("border_ratio") or 0.15),
    )
    return ShapeConfig(dit, vae, conditioner, scheduler, processor)


def load_shape_config(path: Path) -> ShapeConfig:
    """Read and parse ``path`` (a variant's ``config.yaml``)."""
    return parse_shape_config(_read_mapping(path), path)


def load_vae_config(path: Path) -> VaeConfig:
    """Read a standalone VAE folder's ``config.yaml`` (``target`` and ``params`` at the top,
    as in ``hunyuan3d-vae-v2-0-turbo/``)."""
    return VaeConfig(**_params(_read_mapping(path), VaeConfig, path, "vae"))


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"missing config file {path}",
            hint="run `dreamcad-backend download <model id>`",
        ) from error
    except yaml.YAMLError as error:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING, f"{path} is not valid YAML: {error}"
        ) from error
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.WEIGHTS_MISSING, f"{path} does not hold a mapping")
    return raw


def tiny_raw_config(variant: str = "turbo", multi_view: bool = False) -> dict[str, Any]:
    """A tiny config in the official ``config.yaml`` layout (the parity data's sizes).

    ``variant``: "standard" (classifier-free guidance, Euler), "fast" (guidance embedded) or
    "turbo" (guidance embedded, consistency scheduler), as the hub's variant folders differ."""
    dinov2 = {
        "attention_probs_dropout_prob": 0.0, "drop_path_rate": 0.0, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "hidden_size": 32, "image_size": 28,
        "initializer_range": 0.02, "layer_norm_eps": 1.0e-06, "layerscale_value": 1.0,
        "mlp_ratio": 4, "model_type": "dinov2", "num_attention_heads": 2, "num_channels": 3,
        "num_hidden_layers": 2, "patch_size": 14, "qkv_bias": True, "use_swiglu_ffn": True,
    }
    encoder_kwargs: dict[str, Any] = {"config": dinov2, "image_size": 28}
    if multi_view:
        encoder_kwargs["view_num"] = 4
    scheduler: dict[str, Any] = {
        "target": "hy3dgen.shapegen.schedulers.FlowMatchEulerDiscreteScheduler",
        "params": {"num_train_timesteps": 1000},
    }
    if variant == "turbo":
        scheduler = {
            "target": "hy3dgen.shapegen.schedulers.ConsistencyFlowMatchEulerDiscreteScheduler",
            "params": {"num_train_timesteps": 1000, "pcm_timesteps": 100},
        }
    processor = "MVImageProcessorV2" if multi_view else "ImageProcessorV2"
    return {
        "model": {
            "target": "hy3dgen.shapegen.models.Hunyuan3DDiT",
            "params": {
                "in_channels": 8, "context_in_dim": 32, "hidden_size": 32, "mlp_ratio": 2.0,
                "num_heads": 2, "depth": 2, "depth_single_blocks": 2, "axes_dim": [16],
                "theta": 10000, "qkv_bias": True, "guidance_embed": variant != "standard",
            },
        },
        "vae": {"target": "hy3dgen.shapegen.models.ShapeVAE", "params": tiny_vae_params()},
        "conditioner": {
            "target": "hy3dgen.shapegen.models.SingleImageEncoder",
            "params": {
                "main_image_encoder": {
                    "type": "DinoImageEncoderMV" if multi_view else "DinoImageEncoder",
                    "kwargs": encoder_kwargs,
                }
            },
        },
        "scheduler": scheduler,
        "image_processor": {
            "target": f"hy3dgen.shapegen.preprocessors.{processor}",
            "params": {"size": 40, "border_ratio": 0.15},
        },
    }  # fmt: skip


def tiny_vae_params() -> dict[str, Any]:
    """The tiny ShapeVAE's ``params`` (a variant's ``vae`` section, or a VAE folder's top)."""
    return {
        "num_latents": 16, "embed_dim": 8, "width": 32, "heads": 2, "num_decoder_layers": 2,
        "num_freqs": 4, "include_pi": False, "qkv_bias": False, "qk_norm": True,
        "scale_factor": 1.0188137142395404, "geo_decoder_mlp_expand_ratio": 4,
        "geo_decoder_downsample_ratio": 1, "geo_decoder_ln_post": True,
    }  # fmt: skip
