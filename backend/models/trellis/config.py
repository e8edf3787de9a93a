"""TRELLIS's official configuration files as frozen dataclasses, plus tiny test configurations.

A TRELLIS model folder (the hub repo) holds ``pipeline.json`` and, per network, a pair
``ckpts/<name>.json`` + ``ckpts/<name>.safetensors``. ``pipeline.json`` is
``{"name": <pipeline class>, "args": {...}}`` naming each network's file stem (a path inside the
folder, or ``<owner>/<repo>/ckpts/<name>`` for a network of another repo, which is how the text
models take the image model's decoders), the two samplers and the structured-latent
normalisation. A checkpoint JSON is ``{"name": <network class>, "args": {...}}``; its args map
one to one onto the fields below, whose names and defaults are upstream's constructor
arguments, so a file reads back exactly as it was written. Unknown classes, unknown or missing
arguments and options no released checkpoint uses (``share_mod``, rotary position embedding)
are errors naming the file, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared_protocol.errors import ErrorCode, ProtocolError

PIPELINE_FILE = "pipeline.json"
IMAGE_PIPELINE = "TrellisImageTo3DPipeline"
TEXT_PIPELINE = "TrellisTextTo3DPipeline"
SAMPLER_NAME = "FlowEulerGuidanceIntervalSampler"
# pipeline.json "models" keys the pipeline runs (the encoders are never listed).
SS_FLOW, SS_DECODER = "sparse_structure_flow_model", "sparse_structure_decoder"
SLAT_FLOW = "slat_flow_model"
MESH_DECODER, GAUSSIAN_DECODER, RF_DECODER = (
    "slat_decoder_mesh",
    "slat_decoder_gs",
    "slat_decoder_rf",
)
DOWNLOAD_HINT = "The TRELLIS files look damaged or mismatched: download the model again."


def _config_error(where: str, message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.MODEL_FAILED, f"{where}: {message}", hint=DOWNLOAD_HINT)


@dataclass(frozen=True)
class SSFlowConfig:
    """``SparseStructureFlowModel``: the dense DiT over the sparse-structure latent grid."""

    resolution: int
    in_channels: int
    model_channels: int
    cond_channels: int
    out_channels: int
    num_blocks: int
    num_heads: int | None = None
    num_head_channels: int = 64
    mlp_ratio: float = 4.0
    patch_size: int = 2
    pe_mode: str = "ape"
    use_fp16: bool = False
    use_checkpoint: bool = False
    share_mod: bool = False
    qk_rms_norm: bool = False
    qk_rms_norm_cross: bool = False

    @property
    def heads(self) -> int:
        return self.num_heads or self.model_channels // self.num_head_channels

    def check(self, where: str) -> None:
        if self.pe_mode != "ape" or self.share_mod:
            raise _config_error(
                where,
                "only pe_mode 'ape' without share_mod is supported "
                "(what every released checkpoint uses)",
            )
        if self.resolution % self.patch_size or self.model_channels % self.heads:
            raise _config_error(
                where, "resolution must divide by patch_size and model_channels by the head count"
            )


@dataclass(frozen=True)
class SSDecoderConfig:
    """``SparseStructureDecoder``: dense conv3d decoder, latent grid -> occupancy logits."""

    out_channels: int
    latent_channels: int
    num_res_blocks: int
    channels: tuple[int, ...]
    num_res_blocks_middle: int = 2
    norm_type: str = "layer"
    use_fp16: bool = False

    @property
    def upscale(self) -> int:
        """Output grid side / latent grid side (each stage after the first doubles it)."""
        return 2 ** (len(self.channels) - 1)

    def check(self, where: str) -> None:
        if self.norm_type not in ("layer", "group"):
            raise _config_error(where, f"unknown norm_type {self.norm_type!r}")


@dataclass(frozen=True)
class SLatFlowConfig:
    """``SLatFlowModel``: the sparse U-shaped DiT over the structured latent (engineer S)."""

    resolution: int
    in_channels: int
    model_channels: int
    cond_channels: int
    out_channels: int
    num_blocks: int
    num_heads: int | None = None
    num_head_channels: int = 64
    mlp_ratio: float = 4.0
    patch_size: int = 2
    num_io_res_blocks: int = 2
    io_block_channels: tuple[int, ...] | None = None
    pe_mode: str = "ape"
    use_fp16: bool = False
    use_checkpoint: bool = False
    use_skip_connection: bool = True
    share_mod: bool = False
    qk_rms_norm: bool = False
    qk_rms_norm_cross: bool = False

    @property
    def heads(self) -> int:
        return self.num_heads or self.model_channels // self.num_head_channels

    def check(self, where: str) -> None:
        if self.pe_mode != "ape" or self.share_mod:
            raise _config_error(where, "only pe_mode 'ape' without share_mod is supported")


@dataclass(frozen=True)
class SLatDecoderConfig:
    """``SLat{Mesh,Gaussian,RadianceField}Decoder``: the swin trunk + a head (engineer S)."""

    resolution: int
    model_channels: int
    latent_channels: int
    num_blocks: int
    num_heads: int | None = None
    num_head_channels: int = 64
    mlp_ratio: float = 4.0
    attn_mode: str = "swin"
    window_size: int = 8
    pe_mode: str = "ape"
    use_fp16: bool = False
    use_checkpoint: bool = False
    qk_rms_norm: bool = False
    representation_config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def heads(self) -> int:
        return self.num_heads or self.model_channels // self.num_head_channels

    def check(self, where: str) -> None:
        if self.pe_mode != "ape":
            raise _config_error(where, "only pe_mode 'ape' is supported")


NetworkConfig = SSFlowConfig | SSDecoderConfig | SLatFlowConfig | SLatDecoderConfig
# Upstream class names -> their argument dataclass. The Elastic* variants are the same networks
# with a training-time memory mixin (the text models' configs name them).
NETWORK_CONFIGS: dict[str, type] = {
    "SparseStructureFlowModel": SSFlowConfig,
    "SparseStructureDecoder": SSDecoderConfig,
    "SLatFlowModel": SLatFlowConfig,
    "ElasticSLatFlowModel": SLatFlowConfig,
    "SLatMeshDecoder": SLatDecoderConfig,
    "ElasticSLatMeshDecoder": SLatDecoderConfig,
    "SLatGaussianDecoder": SLatDecoderConfig,
    "ElasticSLatGaussianDecoder": SLatDecoderConfig,
    "SLatRadianceFieldDecoder": SLatDecoderConfig,
    "ElasticSLatRadianceFieldDecoder": SLatDecoderConfig,
}
_TUPLE_FIELDS = ("channels", "io_block_channels")


@dataclass(frozen=True)
class NetworkSpec:
    """One checkpoint JSON: the upstream class name and its typed arguments."""

    name: str
    config: NetworkConfig


def network_spec_from_dict(raw: Mapping[str, Any], where: str) -> NetworkSpec:
    """``{"name": ..., "args": {...}}`` -> a NetworkSpec; anything unexpected is an error."""
    name = raw.get("name")
    args = raw.get("args")
    if name not in NETWORK_CONFIGS or not isinstance(args, Mapping):
        raise _config_error(
            where, f"unknown network {name!r} (known: {', '.join(NETWORK_CONFIGS)})"
        )
    cls = NETWORK_CONFIGS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise _config_error(where, f"{name} has unknown arguments {', '.join(unknown)}")
    values = {k: tuple(v) if k in _TUPLE_FIELDS and v is not None else v for k, v in args.items()}
    try:
        config = cls(**values)
    except TypeError as error:  # a required argument is absent
        raise _config_error(where, f"{name}: {error}") from error
    config.check(where)
    return NetworkSpec(name, config)


def network_spec_to_dict(spec: NetworkSpec) -> dict[str, Any]:
    """The JSON form of a spec (every argument written out), read back by the function above."""
    args = {}
    for f in dataclasses.fields(spec.config):
        value = getattr(spec.config, f.name)
        args[f.name] = (
            list(value)
            if isinstance(value, tuple)
            else (dict(value) if isinstance(value, Mapping) else value)
        )
    return {"name": spec.name, "args": args}


def read_network_spec(path: Path) -> NetworkSpec:
    return network_spec_from_dict(_read_json(path), path.name)


@dataclass(frozen=True)
class SamplerConfig:
    """A ``FlowEulerGuidanceIntervalSampler`` and its default parameters from pipeline.json."""

    sigma_min: float
    steps: int
    cfg_strength: float
    cfg_interval: tuple[float, float]
    rescale_t: float

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> SamplerConfig:
        if raw.get("name") != SAMPLER_NAME:
            raise _config_error(where, f"unsupported sampler {raw.get('name')!r}")
        args, params = raw.get("args", {}), raw.get("params", {})
        try:
            low, high = params["cfg_interval"]
            return cls(
                sigma_min=float(args["sigma_min"]),
                steps=int(params["steps"]),
                cfg_strength=float(params["cfg_strength"]),
                cfg_interval=(float(low), float(high)),
                rescale_t=float(params["rescale_t"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise _config_error(where, f"sampler settings incomplete: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": SAMPLER_NAME,
            "args": {"sigma_min": self.sigma_min},
            "params": {
                "steps": self.steps,
                "cfg_strength": self.cfg_strength,
                "cfg_interval": list(self.cfg_interval),
                "rescale_t": self.rescale_t,
            },
        }


@dataclass(frozen=True)
class PipelineConfig:
    """``pipeline.json``: which networks, the samplers' defaults, the latent normalisation.

    ``models`` maps a pipeline role (``sparse_structure_flow_model``...) to a file stem;
    ``condition_model`` is ``image_cond_model`` (``dinov2_vitl14_reg``) for the image pipeline,
    ``text_cond_model`` (``openai/clip-vit-large-patch14``) for the text one."""

    name: str
    models: Mapping[str, str]
    sparse_structure_sampler: SamplerConfig
    slat_sampler: SamplerConfig
    slat_mean: tuple[float, ...]
    slat_std: tuple[float, ...]
    condition_model: str

    @property
    def is_text(self) -> bool:
        return self.name == TEXT_PIPELINE

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = PIPELINE_FILE) -> PipelineConfig:
        name, args = raw.get("name"), raw.get("args")
        if name not in (IMAGE_PIPELINE, TEXT_PIPELINE) or not isinstance(args, Mapping):
            raise _config_error(where, f"unknown pipeline {name!r}")
        condition_key = "text_cond_model" if name == TEXT_PIPELINE else "image_cond_model"
        try:
            models = dict(args["models"])
            normalization = args["slat_normalization"]
            config = cls(
                name=name,
                models=models,
                sparse_structure_sampler=SamplerConfig.from_dict(
                    args["sparse_structure_sampler"], where
                ),
                slat_sampler=SamplerConfig.from_dict(args["slat_sampler"], where),
                slat_mean=tuple(float(v) for v in normalization["mean"]),
                slat_std=tuple(float(v) for v in normalization["std"]),
                condition_model=str(args[condition_key]),
            )
        except (KeyError, TypeError) as error:
            raise _config_error(where, f"missing or malformed entry {error}") from error
        for role in (SS_FLOW, SS_DECODER, SLAT_FLOW):
            if role not in models:
                raise _config_error(where, f"models lacks {role}")
        if len(config.slat_mean) != len(config.slat_std):
            raise _config_error(where, "slat_normalization mean and std differ in length")
        return config

    def to_dict(self) -> dict[str, Any]:
        condition_key = "text_cond_model" if self.is_text else "image_cond_model"
        return {
            "name": self.name,
            "args": {
                "models": dict(self.models),
                "sparse_structure_sampler": self.sparse_structure_sampler.to_dict(),
                "slat_sampler": self.slat_sampler.to_dict(),
                "slat_normalization": {"mean": list(self.slat_mean), "std": list(self.slat_std)},
                condition_key: self.condition_model,
            },
        }


def read_pipeline_config(folder: Path) -> PipelineConfig:
    return PipelineConfig.from_dict(_read_json(folder / PIPELINE_FILE), PIPELINE_FILE)


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"TRELLIS file {path} is missing",
            hint="Download the model (`dreamcad-backend download MODEL`).",
        ) from error
    except (OSError, ValueError) as error:
        raise _config_error(path.name, f"unreadable JSON ({error})") from error
    if not isinstance(raw, Mapping):
        raise _config_error(path.name, "not a JSON object")
    return raw


# --- tiny configurations (tests and CPU smoke runs) ----------------------------------------------
# Shapes keep every structural feature of the released models (fp16 torso, qk RMS norm, a
# zero-padded position embedding: 64 channels = 3 * 10 * 2 + 4, one upsampling per decoder
# stage, 4 registers) at sizes that run in milliseconds. The latent grid is 4^3 -> a 16^3
# occupancy grid; the mesh decoder's 32-group norms need model_channels / 8 >= 32.
TINY_COND_CHANNELS = 32
TINY_SS_FLOW = SSFlowConfig(
    resolution=4,
    in_channels=8,
    model_channels=64,
    cond_channels=TINY_COND_CHANNELS,
    out_channels=8,
    num_blocks=2,
    num_heads=2,
    mlp_ratio=4,
    patch_size=1,
    pe_mode="ape",
    qk_rms_norm=True,
    use_fp16=True,
)
TINY_SS_DECODER = SSDecoderConfig(
    out_channels=1,
    latent_channels=8,
    num_res_blocks=1,
    channels=(32, 16, 8),
    num_res_blocks_middle=1,
    use_fp16=True,
)
TINY_SLAT_FLOW = SLatFlowConfig(
    resolution=16,
    in_channels=8,
    model_channels=64,
    cond_channels=TINY_COND_CHANNELS,
    out_channels=8,
    num_blocks=2,
    num_heads=2,
    mlp_ratio=4,
    patch_size=2,
    num_io_res_blocks=2,
    io_block_channels=(16,),
    pe_mode="ape",
    qk_rms_norm=True,
    use_fp16=True,
)
_TINY_TRUNK = dict(
    resolution=16,
    latent_channels=8,
    num_blocks=2,
    mlp_ratio=4,
    attn_mode="swin",
    window_size=8,
    pe_mode="ape",
    use_fp16=True,
)
TINY_MESH_DECODER = SLatDecoderConfig(
    model_channels=256, num_heads=4, representation_config={"use_color": True}, **_TINY_TRUNK
)
TINY_GAUSSIAN_DECODER = SLatDecoderConfig(
    model_channels=64,
    num_heads=1,
    **_TINY_TRUNK,
    representation_config={
        "lr": {
            "_xyz": 1.0,
            "_features_dc": 1.0,
            "_opacity": 1.0,
            "_scaling": 1.0,
            "_rotation": 0.1,
        },
        "perturb_offset": True,
        "voxel_size": 1.5,
        "num_gaussians": 4,
        "2d_filter_kernel_size": 0.1,
        "3d_filter_kernel_size": 9e-4,
        "scaling_bias": 4e-3,
        "opacity_bias": 0.1,
        "scaling_activation": "softplus",
    },
)
TINY_RF_DECODER = SLatDecoderConfig(
    model_channels=64, num_heads=1, representation_config={"rank": 4, "dim": 4}, **_TINY_TRUNK
)
# The released normalisation (pipeline.json of TRELLIS-image-large), kept for the tiny models
# too so the de-normalisation is exercised with real numbers.
SLAT_MEAN = (
    -2.1687545776367188,
    -0.004347046371549368,
    -0.13352349400520325,
    -0.08418072760105133,
    -0.5271206498146057,
    0.7238689064979553,
    -1.1414450407028198,
    1.2039363384246826,
)
SLAT_STD = (
    2.377650737762451,
    2.386378288269043,
    2.124418020248413,
    2.1748552322387695,
    2.663944721221924,
    2.371192216873169,
    2.6217446327209473,
    2.684523105621338,
)
RELEASED_SAMPLER = SamplerConfig(
    sigma_min=1e-5, steps=25, cfg_strength=5.0, cfg_interval=(0.5, 1.0), rescale_t=3.0
)
