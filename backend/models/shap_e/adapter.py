"""Shap-E adapters: ``shap-e`` (text -> 3D, openai/shap-e) and ``shap-e-img2img`` (image -> 3D).

Two model ids because they are two hub repos with different priors and encoders (one
``WeightsSource`` each); they share the loading, the sampling hook and the mesh extraction.
Sampling runs the diffusers pipeline to its latent output with our step reporter swapped in,
then :func:`latent_to_mesh` extracts the surface at the requested grid size and hands the
geometry pipeline vertex colours plus a colour field to bake from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    GenerationRequest,
    ModelAdapter,
    ProgressCallback,
    WeightFile,
    WeightsSource,
    resolve_parameters,
)
from backend.models.common.device_errors import typed_device_errors
from backend.models.common.pipeline_hooks import report_steps
from backend.models.shap_e.config import IMAGE_PIPELINE, TEXT_PIPELINE
from backend.models.shap_e.loading import load_shap_e
from backend.models.shap_e.mesh import is_volume_filling, latent_to_mesh
from shared_protocol.errors import ErrorCode, ProtocolError
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

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: Any = None
        self.device = "cpu"
        self.load_warnings: list[str] = []

    def load(self, device: str, dtype: str = "float32") -> None:
        if not self.weights_present() or self.weights_dir is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{self.id}: weights not found"
                + (f" in {self.weights_dir}" if self.weights_dir else ""),
                hint=f"run `dreamcad-backend download {self.id}`",
            )
        with typed_device_errors(self.id):
            self.pipeline, _, self.load_warnings = load_shap_e(
                self.weights_dir, self.id, self.pipeline_class, device, dtype
            )
        self.device = device

    def unload(self) -> None:
        self.pipeline = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def _pipeline_input(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        import torch

        if self.pipeline is None:
            raise ProtocolError(ErrorCode.MODEL_FAILED, f"{self.id}: generate() before load()")
        params = resolve_parameters(self.parameters, request.parameters)
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        with typed_device_errors(self.id), report_steps(self.pipeline, "diffusion", progress,
                                                        cancel):
            latents = self.pipeline(
                **self._pipeline_input(request),
                num_inference_steps=params["steps"],
                guidance_scale=params["guidance_scale"],
                generator=generator,
                output_type="latent",
            ).images
        with typed_device_errors(self.id):
            mesh = latent_to_mesh(
                self.pipeline.shap_e_renderer, latents[0], params["grid_size"], progress, cancel
            )
        warnings = list(self.load_warnings)
        if len(mesh.faces) == 0:
            warnings.append("the implicit surface is empty at this seed; try another seed")
        elif is_volume_filling(len(mesh.faces), params["grid_size"]):
            # Seen with random weights: the field changes sign everywhere, marching cubes fills
            # the box with millions of faces and clean/decimate/bake take minutes on them.
            warnings.append(
                f"the implicit field changes sign throughout the volume ({len(mesh.faces)} faces "
                f"at grid {params['grid_size']}): not a surface; are the weights trained? The "
                "geometry pipeline is slow on such a mesh"
            )
        return RawAsset(
            vertices=mesh.vertices,
            faces=mesh.faces,
            vertex_colors=mesh.vertex_colors,
            color_field=mesh.color_field,
            name=f"{self.id}-{request.seed}",
            warnings=warnings,
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
    parameters = _parameters(guidance=3.0)
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
        from PIL import Image

        return {"image": Image.fromarray(composite_on_white(request.images[0].pixels))}


def composite_on_white(pixels: np.ndarray) -> np.ndarray:
    """(h, w, 3|4) uint8 -> (h, w, 3) uint8 over white, the background Shap-E was shown."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"expected an RGB or RGBA image, got shape {pixels.shape}",
            field="images",
        )
    if pixels.shape[2] == 3:
        return pixels
    alpha = pixels[..., 3:4].astype(np.float32) / 255.0
    rgb = pixels[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
