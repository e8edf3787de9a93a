"""Model adapters for the Hunyuan3D-2 shape family: 2mini, 2 and 2mv (multi-view).

Each hub repo ships three variants of one DiT: standard (classifier-free guidance, ~30-50
steps), fast (guidance distilled: one model call per step) and turbo (step distilled: 5 steps).
Only the turbo variant is in the declared download (one ~1-2 GB file, not the whole repo); the
others load if the user put them in the weights folder and asks for them. Outputs are raw
marching-cubes meshes in the backend frame (Hunyuan3D already works +Y up, facing +Z); the
geometry pipeline decimates, unwraps and bakes them. With ``texture="paint"`` (off by default
until real-weight quality is checked) Hunyuan3D-Paint (:mod:`.paint`; its delight and paint
folders from ``tencent/Hunyuan3D-2``, the ``paint`` component: ``dreamcad-backend download ID
--with paint``, or inside the weights folder) paints six views of the mesh, handed over with the
full-resolution mesh as ``views`` for the pipeline to bake. ``decoding="flashvdm"`` is upstream's
``enable_flashvdm()``: FlashVDM's octree levels with adaptive key selection, decoded by the
distilled turbo VAE when its ``turbo-vae`` component is there (``--with turbo-vae``; loaded on
first use and kept with the model), else by the variant's own VAE with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import PaintedViews, RawAsset
from backend.models.base import (
    GenerationRequest,
    ModelAdapter,
    ProgressCallback,
    WeightFile,
    WeightsSource,
    resolve_parameters,
)
from backend.models.device_errors import typed_device_errors
from backend.models.hunyuan3d.conditioner import VIEW_INDEX
from backend.models.hunyuan3d.loading import ShapeModels, load_shape_models, load_vae
from backend.models.hunyuan3d.paint import delight as paint_delight
from backend.models.hunyuan3d.paint import loading as paint_loading
from backend.models.hunyuan3d.paint.loading import PaintModels
from backend.models.hunyuan3d.paint.texture import PaintSettings, paint_views
from backend.models.hunyuan3d.pipeline import ShapePipeline, ShapeSettings
from backend.models.hunyuan3d.preprocess import to_condition_tensor
from backend.models.torch_dtypes import DTYPES
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

OUT_OF_MEMORY_HINT = (
    "Lower octree_resolution or num_chunks, use the turbo variant, or close other GPU programs."
)
LICENSE = (
    "Tencent Hunyuan 3D Community License: not licensed for use in the European Union, the "
    "United Kingdom or South Korea; services above 1 million monthly active users need a "
    "separate licence from Tencent; outputs may not be used to improve other AI models."
)
LICENSE_URL = "https://github.com/Tencent/Hunyuan3D-2/blob/main/LICENSE"

# Hunyuan3D-Paint (texture=paint) lives in tencent/Hunyuan3D-2 whichever shape model is used:
# its delight and paint diffusers folders, fetched whole (about 10 GB, an estimate: the folders
# hold fp32 SD-2.1-sized UNets, VAEs and text encoders). Revision: the branch, as for the shape
# weights of that repo (no verified commit could be found offline).
PAINT_WEIGHTS = WeightsSource(
    "tencent/Hunyuan3D-2",
    "main",
    folders=(paint_delight.SUBFOLDER, paint_loading.SUBFOLDER),
    approx_size=10 * 2**30,
)



def turbo_vae_weights(repo_id: str, revision: str, folder: str) -> WeightsSource:
    """The FlashVDM turbo VAE of a shape model: one subfolder of ``repo_id``, read as
    upstream's ``ShapeVAE.from_pretrained`` reads it (config.yaml + the fp16 safetensors).
    No sha256: none could be verified offline; the revision is the shape weights' own."""
    return WeightsSource(
        repo_id,
        revision,
        (WeightFile(f"{folder}/config.yaml"), WeightFile(f"{folder}/model.fp16.safetensors")),
    )


# Steps each variant was made for (upstream's app: turbo 5, fast 10, standard 30).
DEFAULT_STEPS = {"turbo": 5, "fast": 10, "standard": 30}
VARIANT_SUFFIX = {"standard": "", "fast": "-fast", "turbo": "-turbo"}

PARAMETERS: tuple[ParameterSchema, ...] = (
    ParameterSchema(
        "variant",
        "choice",
        "turbo",
        "Variant",
        "turbo: 5 steps; fast: guidance distilled; standard: classifier-free guidance",
        choices=("turbo", "fast", "standard"),
    ),
    ParameterSchema("steps", "int", 0, "Steps", "0 = the variant's own count", 0, 100),
    ParameterSchema("guidance_scale", "float", 5.0, "Guidance", "image adherence", 0.0, 20.0),
    ParameterSchema("octree_resolution", "int", 256, "Resolution", "grid cells per side", 16, 512),
    ParameterSchema(
        "decoding",
        "choice",
        "octree",
        "Decoding",
        "octree: query near the surface only; dense: every grid point (upstream default); "
        "flashvdm: FlashVDM (levels snapped, 384 becomes 380; adaptive attention; the turbo "
        "VAE when downloaded with --with turbo-vae)",
        choices=("octree", "dense", "flashvdm"),
    ),
    ParameterSchema(
        "adaptive_kv",
        "bool",
        True,
        "Adaptive attention",
        "flashvdm only: each group of nearby points attends to its own top latents (upstream's "
        "default); off: exact attention",
    ),
    ParameterSchema(
        "num_chunks", "int", 65_536, "Chunk", "points per decoding batch", 1_000, 1_000_000
    ),
    ParameterSchema(
        "texture",
        "choice",
        "none",
        "Texture",
        "paint: Hunyuan3D-Paint (delight + multi-view diffusion, needs its weights); none: "
        "shape only",
        choices=("none", "paint"),
    ),
    ParameterSchema("paint_steps", "int", 30, "Paint steps", "multi-view diffusion steps", 1, 100),
    ParameterSchema("delight_steps", "int", 50, "Delight steps", "delight model steps", 1, 100),
    ParameterSchema(
        "paint_view_size", "int", 512, "Paint view size",
        "pixels per generated view (the model was trained at 512)",
        16, 1024,
    ),
)


class Hunyuan3DShapeAdapter(ModelAdapter):
    """Shared behaviour; subclasses name the repo and the variant folder prefix."""

    repo_id: ClassVar[str]
    folder_prefix: ClassVar[str]
    turbo_vae_folder: ClassVar[str]  # the FlashVDM turbo VAE's subfolder in its repo
    tasks = ("image",)
    parameters = PARAMETERS
    license = LICENSE
    license_url = LICENSE_URL
    components = {"paint": PAINT_WEIGHTS}
    cuda_dtype = "float16"  # upstream loads model.fp16.safetensors in float16

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self._models: ShapeModels | None = None
        self._variant = ""
        self._device = "cpu"
        self._dtype = torch.float32
        self._paint: tuple[Any, PaintModels] | None = None  # (delight pipeline, paint models)

    @classmethod
    def variant_folder(cls, variant: str) -> str:
        return cls.folder_prefix + VARIANT_SUFFIX[variant]

    def _variant_dir(self, variant: str) -> Path:
        if self.weights_dir is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"no weights folder configured for {self.id}",
                hint=f"run `dreamcad-backend download {self.id}`",
            )
        folder = self.weights_dir / self.variant_folder(variant)
        if not (folder / "config.yaml").is_file():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"the {variant} variant of {self.id} is not in {self.weights_dir}",
                field="body.parameters.variant",
                hint=f"run `dreamcad-backend download {self.id}` (turbo), or add the "
                f"{self.variant_folder(variant)}/ folder from {self.repo_id}",
            )
        return folder

    def load(self, device: str, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER, f"unsupported dtype {dtype!r}", field="dtype"
            )
        self._device, self._dtype = device, DTYPES[dtype]
        self._load_variant("turbo")

    def _load_variant(self, variant: str) -> ShapeModels:
        if self._models is not None and self._variant == variant:
            return self._models
        folder = self._variant_dir(variant)
        self.unload()
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            self._models = load_shape_models(folder, self._device, self._dtype)
        self._variant = variant
        return self._models

    def _turbo_vae_dir(self) -> Path | None:
        """The turbo VAE folder: the ``turbo-vae`` component's, else inside the weights folder
        (a full clone of the repo has it); None when neither holds it."""
        for base in (self.component_dirs.get("turbo-vae"), self.weights_dir):
            if base is not None and (base / self.turbo_vae_folder / "config.yaml").is_file():
                return base / self.turbo_vae_folder
        return None

    def _load_turbo_vae(self, models: ShapeModels) -> list[str]:
        """Load the turbo VAE into ``models`` once -> warnings (one when it is missing)."""
        if models.turbo_vae is not None:
            return []
        folder = self._turbo_vae_dir()
        if folder is None:
            return [
                f"decoding=flashvdm used {self.id}'s own VAE: the turbo VAE FlashVDM was "
                f"distilled with is not downloaded (run `dreamcad-backend download {self.id} "
                "--with turbo-vae --only`)"
            ]
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            models.turbo_vae = load_vae(folder, models.device, models.dtype, models.config)
        return []

    def _paint_dirs(self) -> tuple[Path, Path]:
        """The delight and paint folders (from tencent/Hunyuan3D-2): those of the ``paint``
        component when it was found, else inside the shape weights folder."""
        base = self.component_dirs.get("paint") or self.weights_dir or Path("<no weights>")
        folders = (base / paint_delight.SUBFOLDER, base / paint_loading.SUBFOLDER)
        for folder in folders:
            if not (folder / "model_index.json").is_file():
                raise ProtocolError(
                    ErrorCode.WEIGHTS_MISSING,
                    f"texture=paint needs {folder.name}/ (from {PAINT_WEIGHTS.repo_id}); "
                    f"not found in {base}",
                    field="body.parameters.texture",
                    hint=f"run `dreamcad-backend download {self.id} --with paint --only`, or "
                    "use texture=none",
                )
        return folders

    def _load_paint(self) -> tuple[Any, PaintModels]:
        if self._paint is None:
            delight_dir, paint_dir = self._paint_dirs()
            dtype = {torch.float32: "float32", torch.float16: "float16",
                     torch.bfloat16: "bfloat16"}[self._dtype]
            self._paint = (
                paint_delight.load_delight(delight_dir, self._device, dtype),
                paint_loading.load_paint_models(paint_dir, self._device, self._dtype),
            )
        return self._paint

    def unload(self) -> None:
        self._models = None
        self._paint = None
        self._variant = ""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def check_inputs(self, request: GenerationRequest) -> None:
        super().check_inputs(request)
        parameters = resolve_parameters(self.parameters, request.parameters)
        self._variant_dir(parameters["variant"])
        if parameters["texture"] == "paint":
            self._paint_dirs()
        views = [image.view for image in request.images]
        if self.max_images == 1:
            return
        unknown = sorted(set(views) - set(VIEW_INDEX))
        if unknown:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"unknown view(s) {unknown}; this model takes {', '.join(VIEW_INDEX)}",
                field="body.images",
            )
        if len(set(views)) != len(views):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "each view may be given once", field="body.images"
            )

    def _settings(self, parameters: dict[str, Any], seed: int) -> ShapeSettings:
        decoding = {"octree": "hierarchical"}.get(parameters["decoding"], parameters["decoding"])
        return ShapeSettings(
            steps=parameters["steps"] or DEFAULT_STEPS[parameters["variant"]],
            guidance_scale=parameters["guidance_scale"],
            seed=seed,
            octree_resolution=parameters["octree_resolution"],
            num_chunks=parameters["num_chunks"],
            decoding=decoding,
            adaptive_kv=parameters["adaptive_kv"],
        )

    def _images(self, request: GenerationRequest, size: int, border: float) -> torch.Tensor:
        ordered = sorted(request.images, key=lambda image: VIEW_INDEX.get(image.view, 0))
        tensors = [to_condition_tensor(image.pixels, size, border) for image in ordered]
        if self.max_images == 1:
            return tensors[0]
        return torch.stack([t[0] for t in tensors])[None]

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        self.check_inputs(request)
        parameters = resolve_parameters(self.parameters, request.parameters)
        models = self._load_variant(parameters["variant"])
        processor = models.config.image_processor
        images = self._images(request, processor.size, processor.border_ratio)
        views = tuple(sorted(VIEW_INDEX.get(image.view, 0) for image in request.images))
        settings = self._settings(parameters, request.seed)
        warnings = self._load_turbo_vae(models) if settings.decoding == "flashvdm" else []

        def on_event(stage: str, step: int, total: int) -> None:
            cancel.raise_if_cancelled()
            progress(stage, step, total)

        try:
            with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
                result = ShapePipeline(models)(images, views, settings, on_event)
        except ValueError as error:  # no surface: the field is empty or full
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"{self.id} produced no surface: {error}",
                hint="Try another seed, or an image with a clearer subject on transparency.",
            ) from error
        name = f"{self.id}-{parameters['variant']}"
        if not np.isfinite(result.vertices).all():
            warnings.append("non-finite vertices")
        if parameters["texture"] == "none":
            return RawAsset(result.vertices, result.faces, name=name, warnings=warnings)
        painted = self._paint_texture(request, parameters, result.vertices, result.faces,
                                      progress, cancel)
        return RawAsset(result.vertices, result.faces, views=painted, name=name,
                        warnings=warnings)

    def _paint_texture(
        self,
        request: GenerationRequest,
        parameters: dict[str, Any],
        vertices: np.ndarray,
        faces: np.ndarray,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> PaintedViews:
        """Hunyuan3D-Paint's views of the shape, from the front view (or the only one)."""
        delight_pipeline, paint_models = self._load_paint()
        front = next((i for i in request.images if i.view == "front"), request.images[0])
        settings = PaintSettings(
            view_size=parameters["paint_view_size"], steps=parameters["paint_steps"],
            delight_steps=parameters["delight_steps"], seed=request.seed,
        )
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            return paint_views(vertices, faces, front.pixels, delight_pipeline, paint_models,
                               settings, progress, cancel)


class Hunyuan3D2MiniAdapter(Hunyuan3DShapeAdapter):
    id = "hunyuan3d-2mini"
    name = "Hunyuan3D-2 mini"
    description = "Tencent Hunyuan3D-2mini (0.6B): image to shape, 5-step turbo by default."
    repo_id = "tencent/Hunyuan3D-2mini"
    folder_prefix = "hunyuan3d-dit-v2-mini"
    turbo_vae_folder = "hunyuan3d-vae-v2-mini-turbo"
    vram_mb = 6_000
    components = {
        "paint": PAINT_WEIGHTS,
        "turbo-vae": turbo_vae_weights(
            repo_id, "f90a0f7df7d5e6f71109cf333f6a95a0ae3194a6", turbo_vae_folder
        ),
    }
    weights = WeightsSource(
        repo_id,
        # Pinned revision and hash as published by other projects pinning this repo; the
        # hash is re-checked on download.
        "f90a0f7df7d5e6f71109cf333f6a95a0ae3194a6",
        (
            WeightFile("hunyuan3d-dit-v2-mini-turbo/config.yaml"),
            WeightFile(
                "hunyuan3d-dit-v2-mini-turbo/model.fp16.safetensors",
                "bdbcef30dd0149a281e17d5b5b1fdad1122c904e098a42f3100e04e03c247bc4",
            ),
        ),
    )


class Hunyuan3D2Adapter(Hunyuan3DShapeAdapter):
    id = "hunyuan3d-2"
    name = "Hunyuan3D-2"
    description = "Tencent Hunyuan3D-2 (1.1B DiT): image to shape, 5-step turbo by default."
    repo_id = "tencent/Hunyuan3D-2"
    folder_prefix = "hunyuan3d-dit-v2-0"
    turbo_vae_folder = "hunyuan3d-vae-v2-0-turbo"
    vram_mb = 10_000
    components = {
        "paint": PAINT_WEIGHTS,
        "turbo-vae": turbo_vae_weights(repo_id, "main", turbo_vae_folder),
    }
    weights = WeightsSource(
        repo_id,
        "main",  # no verified commit found offline; pin when the registry downloads it
        (
            WeightFile("hunyuan3d-dit-v2-0-turbo/config.yaml"),
            WeightFile("hunyuan3d-dit-v2-0-turbo/model.fp16.safetensors"),
        ),
    )


class Hunyuan3D2MVAdapter(Hunyuan3DShapeAdapter):
    id = "hunyuan3d-2mv"
    name = "Hunyuan3D-2 multi-view"
    description = "Tencent Hunyuan3D-2mv (1.1B): shape from any of front/left/back/right views."
    repo_id = "tencent/Hunyuan3D-2mv"
    folder_prefix = "hunyuan3d-dit-v2-mv"
    tasks = ("multi_image", "image")
    max_images = 4
    vram_mb = 10_000
    # Upstream's enable_flashvdm() takes 2mv's turbo VAE from tencent/Hunyuan3D-2.
    turbo_vae_folder = "hunyuan3d-vae-v2-0-turbo"
    components = {
        "paint": PAINT_WEIGHTS,
        "turbo-vae": turbo_vae_weights("tencent/Hunyuan3D-2", "main", turbo_vae_folder),
    }
    weights = WeightsSource(
        repo_id,
        "main",  # no verified commit found offline; pin when the registry downloads it
        (
            WeightFile("hunyuan3d-dit-v2-mv-turbo/config.yaml"),
            WeightFile("hunyuan3d-dit-v2-mv-turbo/model.fp16.safetensors"),
        ),
    )
