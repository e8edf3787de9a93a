"""TRELLIS.2's ``pipeline.json`` as a frozen dataclass, and the tiny test configuration.

``pipeline.json`` (microsoft/TRELLIS.2-4B) is ``{"name": "Trellis2ImageTo3DPipeline", "args":
{...}}`` with ``models`` (role -> checkpoint stem: ``ckpts/<name>`` inside the repo, or
``microsoft/TRELLIS-image-large/ckpts/ss_dec_conv3d_16l8_fp16`` for the structure decoder it
borrows from TRELLIS v1), three samplers ``{"name", "args": {"sigma_min"}, "params": {steps,
guidance_strength, guidance_rescale, guidance_interval, rescale_t}}``, the shape and texture
latent normalisations ``{"mean", "std"}`` (32 values each), ``image_cond_model``,
``rembg_model``, ``low_vram`` and ``default_pipeline_type``. Unknown sampler or pipeline names
are errors naming the file. A checkpoint JSON is ``{"name": <class>, "args": {...}}``, its args
upstream's constructor keywords (loading.py builds the network from them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.models.trellis2.sampler_settings import Trellis2SamplerSettings
from shared_protocol.errors import ErrorCode, ProtocolError

PIPELINE_FILE = "pipeline.json"
PIPELINE_NAME = "Trellis2ImageTo3DPipeline"
SAMPLER_NAME = "FlowEulerGuidanceIntervalSampler"
SS_FLOW, SS_DECODER = "sparse_structure_flow_model", "sparse_structure_decoder"
SHAPE_FLOW_512, SHAPE_FLOW_1024 = "shape_slat_flow_model_512", "shape_slat_flow_model_1024"
TEX_FLOW_512, TEX_FLOW_1024 = "tex_slat_flow_model_512", "tex_slat_flow_model_1024"
SHAPE_DECODER, TEX_DECODER = "shape_slat_decoder", "tex_slat_decoder"
# texturing_pipeline.json's role for the shape encoder (texturing an existing mesh).
SHAPE_ENCODER = "shape_slat_encoder"
SHAPE_ENCODER_STEM = "ckpts/shape_enc_next_dc_f16c32_fp16"
SAMPLER_ROLES = ("sparse_structure_sampler", "shape_slat_sampler", "tex_slat_sampler")
HINT = "The TRELLIS.2 files look damaged or mismatched: download the model again."


@dataclass(frozen=True)
class StageSampler:
    sigma_min: float
    settings: Trellis2SamplerSettings

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str) -> StageSampler:
        if raw.get("name") != SAMPLER_NAME:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED, f"{where}: unknown sampler {raw.get('name')!r}", hint=HINT
            )
        params = dict(raw["params"])
        params["guidance_interval"] = tuple(params.get("guidance_interval", (0.0, 1.0)))
        return cls(float(raw["args"]["sigma_min"]), Trellis2SamplerSettings(**params))

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "name": SAMPLER_NAME,
            "args": {"sigma_min": self.sigma_min},
            "params": {
                "steps": s.steps,
                "guidance_strength": s.guidance_strength,
                "guidance_rescale": s.guidance_rescale,
                "guidance_interval": list(s.guidance_interval),
                "rescale_t": s.rescale_t,
            },
        }


@dataclass(frozen=True)
class Trellis2PipelineConfig:
    models: dict[str, str]
    samplers: dict[str, StageSampler]
    shape_mean: tuple[float, ...]
    shape_std: tuple[float, ...]
    tex_mean: tuple[float, ...]
    tex_std: tuple[float, ...]
    image_cond_model: dict[str, Any] = field(default_factory=dict)
    rembg_model: dict[str, Any] = field(default_factory=dict)
    low_vram: bool = True
    default_pipeline_type: str = "1024_cascade"

    @classmethod
    def from_dict(
        cls, raw: Mapping[str, Any], where: str = PIPELINE_FILE
    ) -> Trellis2PipelineConfig:
        if raw.get("name") != PIPELINE_NAME:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED, f"{where}: not a {PIPELINE_NAME} ({raw.get('name')!r})",
                hint=HINT,
            )  # fmt: skip
        args = raw["args"]
        try:
            return cls(
                models=dict(args["models"]),
                samplers={
                    role: StageSampler.from_dict(args[role], f"{where} {role}")
                    for role in SAMPLER_ROLES
                },
                shape_mean=tuple(args["shape_slat_normalization"]["mean"]),
                shape_std=tuple(args["shape_slat_normalization"]["std"]),
                tex_mean=tuple(args["tex_slat_normalization"]["mean"]),
                tex_std=tuple(args["tex_slat_normalization"]["std"]),
                image_cond_model=dict(args.get("image_cond_model", {})),
                rembg_model=dict(args.get("rembg_model", {})),
                low_vram=bool(args.get("low_vram", True)),
                default_pipeline_type=str(args.get("default_pipeline_type", "1024_cascade")),
            )
        except (KeyError, TypeError) as error:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED, f"{where}: missing or malformed {error}", hint=HINT
            ) from error

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": PIPELINE_NAME,
            "args": {
                "models": dict(self.models),
                **{role: sampler.to_dict() for role, sampler in self.samplers.items()},
                "shape_slat_normalization": {
                    "mean": list(self.shape_mean), "std": list(self.shape_std),
                },
                "tex_slat_normalization": {"mean": list(self.tex_mean), "std": list(self.tex_std)},
                "image_cond_model": self.image_cond_model,
                "rembg_model": self.rembg_model,
                "low_vram": self.low_vram,
                "default_pipeline_type": self.default_pipeline_type,
            },
        }  # fmt: skip


def read_pipeline_config(folder: Path) -> Trellis2PipelineConfig:
    path = folder / PIPELINE_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING, f"{path} is missing",
            hint="Run `dreamcad-backend download trellis2-4b`.",
        ) from error  # fmt: skip
    except json.JSONDecodeError as error:
        raise ProtocolError(ErrorCode.MODEL_FAILED, f"{path}: {error}", hint=HINT) from error
    return Trellis2PipelineConfig.from_dict(raw, str(path))


# The release's sampler settings (pipeline.json, the research notes section 6).
_RELEASE = Trellis2SamplerSettings
RELEASED_SAMPLERS = {
    "sparse_structure_sampler": StageSampler(1e-5, _RELEASE(12, 7.5, 0.7, (0.6, 1.0), 5.0)),
    "shape_slat_sampler": StageSampler(1e-5, _RELEASE(12, 7.5, 0.5, (0.6, 1.0), 3.0)),
    "tex_slat_sampler": StageSampler(1e-5, _RELEASE(12, 1.0, 0.0, (0.6, 0.9), 3.0)),
}
