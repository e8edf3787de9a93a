"""Shap-E adapters: ``shap-e`` (text -> 3D, openai/shap-e) and ``shap-e-img2img`` (image -> 3D).

The cards and the hooks only. Two model ids because they are two hub repos with different priors
and encoders (one ``WeightsSource`` each); they share the loading (loading.py), one run
(pipeline.py: sampling, then the surface at the requested grid) and the hand-over: vertex
colours plus a colour field for the geometry pipeline to bake. The image model takes its input
through the shared cut-out (the ``background`` parameter) and only flattens it onto white.
Heavy imports (torch, diffusers) happen in the hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    GenerationRequest,
    ModelAdapter,
    ProgressCallback,
    WeightFile,
    WeightsSource,
)
from backend.models.common.background_choice import BACKGROUND_PARAMETER
from backend.models.shap_e.config import IMAGE_PIPELINE, TEXT_PIPELINE
from shared_protocol.messages import ParameterSchema

MIT_URL = "https://github.com/openai/shap-e/blob/main/LICENSE"


def _parameters(guidance: float) -> tuple[ParameterSchema, ...]:
    return (
        ParameterSchema("steps", "int", 64, "Steps", "Karras/Heun sampling steps", 2, 256),
        ParameterSchema("guidance_scale", "float", guidance, "Guidance",
                        "classifier-free guidance scale", 1.0, 30.0),
        ParameterSchema("grid_size", "int", 128, "Mesh grid",
                        "marching-cubes lattice per axis (finer: more detail, slower)", 16, 384),
    )


def _component_files(encoder: tuple[str, ...]) -> tuple[WeightFile, ...]:
    common = (
        "model_index.json",
        "scheduler/scheduler_config.json",
        "prior/config.json",
        "prior/diffusion_pytorch_model.bin",
        "shap_e_renderer/config.json",
        "shap_e_renderer/diffusion_pytorch_model.bin",
    )
    return tuple(WeightFile(path) for path in common + encoder)


class _ShapEBase(ModelAdapter):
    """Shared body; subclasses fix the pipeline class, the weights and how input is encoded."""

    cuda_dtype = "float16"  # as diffusers' Shap-E examples run it
    pipeline_class: ClassVar[str]
    license = "MIT"
    license_url = MIT_URL
    vram_mb = 6_000
    # Measured on an H100 at grid 128, 64 steps: sampling 3.6 s, surface extraction 0.17 s.
    stage_weights = {"diffusion": 0.9, "mesh": 0.1}
    out_of_memory_hint = "Lower the mesh grid or the step count, or close other GPU programs."

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: Any = None  # the diffusers ShapEPipeline / ShapEImg2ImgPipeline
        self.load_warnings: list[str] = []

    def _load(self, device: str, dtype: str) -> None:
        from backend.models.shap_e.loading import load_shap_e

        assert self.weights_dir is not None  # the template checked the weights are present
        self.pipeline, _, self.load_warnings = load_shap_e(
            self.weights_dir, self.id, self.pipeline_class, device, dtype
        )

    def _release(self) -> None:
        self.pipeline = None
        self.load_warnings = []

    def _pipeline_input(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.shap_e.pipeline import run_shap_e

        params = request.parameters
        out = run_shap_e(
            self.pipeline, self._pipeline_input(request), steps=params["steps"],
            guidance_scale=params["guidance_scale"], grid_size=params["grid_size"],
            seed=request.seed, progress=progress, cancel=cancel,
        )
        return RawAsset(
            vertices=out.mesh.vertices,
            faces=out.mesh.faces,
            vertex_colors=out.mesh.vertex_colors,
            color_field=out.mesh.color_field,
            name=f"{self.id}-{request.seed}",
            warnings=list(self.load_warnings) + out.warnings,
        )


class ShapETextAdapter(_ShapEBase):
    id = "shap-e"
    name = "Shap-E (text)"
    description = "OpenAI Shap-E: a prompt to a coloured mesh in seconds; coarse detail."
    tasks = ("text",)
    parameters = _parameters(guidance=15.0)
    pipeline_class = TEXT_PIPELINE
    # Revision: latest hub commit found (README fix after the shap_e_renderer folder landed).
    weights = WeightsSource(
        "openai/shap-e",
        "1e72ed448ff7641d3b939f9e23e8d26a264b4683",
        _component_files((
            "text_encoder/config.json",
            "text_encoder/pytorch_model.bin",
            "tokenizer/vocab.json",
            "tokenizer/merges.txt",
            "tokenizer/special_tokens_map.json",
            "tokenizer/tokenizer_config.json",
        )),
    )

    def _pipeline_input(self, request: GenerationRequest) -> dict[str, Any]:
        return {"prompt": request.prompt}


class ShapEImageAdapter(_ShapEBase):
    id = "shap-e-img2img"
    name = "Shap-E (image)"
    description = "OpenAI Shap-E image variant: one picture of an object to a coloured mesh."
    tasks = ("image",)
    parameters = (*_parameters(guidance=3.0), BACKGROUND_PARAMETER)
    pipeline_class = IMAGE_PIPELINE
    weights = WeightsSource(
        "openai/shap-e-img2img",
        "main",  # no commit sha found for this repo's head; pin once downloaded
        _component_files((
            "image_encoder/config.json",
            "image_encoder/pytorch_model.bin",
            "image_processor/preprocessor_config.json",
        )),
    )

    def _pipeline_input(self, request: GenerationRequest) -> dict[str, Any]:
        from backend.models.shap_e.pipeline import image_input

        return image_input(request.images[0].pixels)  # cut out by the template
