"""The cards and hooks of the Hunyuan3D-2 shape models: 2mini, 2 and 2mv (multi-view).

Each hub repo ships three variants of one DiT: standard (classifier-free guidance, ~30-50
steps), fast (guidance distilled: one model call per step) and turbo (step distilled: 5 steps).
Only the turbo variant is in the declared download (one ~1-2 GB file, not the whole repo); the
others load if the user put them in the weights folder and asks for them (see
:class:`Hunyuan3DShapeAdapter` for when). Outputs are raw marching-cubes meshes in the backend
frame (Hunyuan3D already works +Y up, facing +Z); the geometry pipeline decimates, unwraps and
bakes them. With ``texture="paint"`` (off by default until real-weight quality is checked)
Hunyuan3D-Paint (:mod:`.paint`; its delight and paint folders from ``tencent/Hunyuan3D-2``, the
``paint`` component: ``dreamcad-backend download ID --with paint``, or inside the weights folder)
paints six views of the mesh, handed over with the full-resolution mesh as ``views`` for the
pipeline to decimate, unwrap and bake once. ``decoding="flashvdm"`` is upstream's
``enable_flashvdm()``: FlashVDM's octree levels with adaptive key selection, decoded by the
distilled turbo VAE when its ``turbo-vae`` component is there (``--with turbo-vae``), else by the
variant's own VAE with a warning.

Card and checks only import the light config module; torch and the networks load in the hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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
from backend.models.hunyuan3d.config import VIEW_INDEX
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

if TYPE_CHECKING:
    import numpy as np

    from backend.models.hunyuan3d.loading import ShapeModels
    from backend.models.hunyuan3d.pipeline import ShapeSettings

LICENSE = (
    "Tencent Hunyuan 3D Community License: not licensed for use in the European Union, the "
    "United Kingdom or South Korea; services above 1 million monthly active users need a "
    "separate licence from Tencent; outputs may not be used to improve other AI models."
)
LICENSE_URL = "https://github.com/Tencent/Hunyuan3D-2/blob/main/LICENSE"

# Hunyuan3D-Paint (texture=paint) lives in tencent/Hunyuan3D-2 whichever shape model is used:
# its delight and paint diffusers folders, fetched whole (about 10 GB, an estimate: the folders
# hold fp32 SD-2.1-sized UNets, VAEs and text encoders). Revision: the branch, as for the shape
# weights of that repo (no verified commit could be found offline). The folder names are
# paint_delight.SUBFOLDER and paint_loading.SUBFOLDER (a test keeps them equal), spelled out
# here so the card imports no paint code.
DELIGHT_FOLDER = "hunyuan3d-delight-v2-0"
PAINT_FOLDER = "hunyuan3d-paint-v2-0"
PAINT_WEIGHTS = WeightsSource(
    "tencent/Hunyuan3D-2", "main", folders=(DELIGHT_FOLDER, PAINT_FOLDER), approx_size=10 * 2**30
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


DEFAULT_VARIANT = "turbo"  # the declared download: what `_load` reads
# Steps each variant was made for (upstream's app: turbo 5, fast 10, standard 30).
DEFAULT_STEPS = {"turbo": 5, "fast": 10, "standard": 30}
VARIANT_SUFFIX = {"standard": "", "fast": "-fast", "turbo": "-turbo"}

PARAMETERS: tuple[ParameterSchema, ...] = (
    ParameterSchema(
        "variant", "choice", DEFAULT_VARIANT, "Variant",
        "turbo: 5 steps; fast: guidance distilled; standard: classifier-free guidance",
        choices=("turbo", "fast", "standard"),
    ),
    ParameterSchema("steps", "int", 0, "Steps", "0 = the variant's own count", 0, 100),
    ParameterSchema("guidance_scale", "float", 5.0, "Guidance", "image adherence", 0.0, 20.0),
    ParameterSchema("octree_resolution", "int", 256, "Resolution", "grid cells per side", 16, 512),
    ParameterSchema(
        "decoding", "choice", "octree", "Decoding",
        "octree: query near the surface only; dense: every grid point (upstream default); "
        "flashvdm: FlashVDM (levels snapped, 384 becomes 380; adaptive attention; the turbo "
        "VAE when downloaded with --with turbo-vae)",
        choices=("octree", "dense", "flashvdm"),
    ),
    ParameterSchema(
        "adaptive_kv", "bool", True, "Adaptive attention",
        "flashvdm only: each group of nearby points attends to its own top latents (upstream's "
        "default); off: exact attention",
    ),
    # The decoder holds ~12 kB a point of a chunk (fp16, full size): 32768 points keep the
    # 384-octree decode's peak ~0.7 GB above the weights, under hy3dgen's dense decode
    # (benchmarks/hunyuan3d_memory.py); 65536 needs ~1.1 GB (`benchmarks/hunyuan3d.py
    # --our-chunks 32768 65536` times both on a GPU).
    ParameterSchema(
        "num_chunks", "int", 32_768, "Chunk", "points per decoding batch", 1_000, 1_000_000
    ),
    ParameterSchema(
        "texture", "choice", "none", "Texture",
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
    BACKGROUND_PARAMETER,
)  # fmt: skip

# Shares of the texture stage between Hunyuan3D-Paint's own stages (H100: delight and the
# multi-view diffusion take nearly all of it).
PAINT_STAGE_WEIGHTS = {"texture_prepare": 0.1, "delight": 0.4, "paint": 0.5}


class Hunyuan3DShapeAdapter(ModelAdapter):
    """Shared card and hooks; subclasses name the repo and the variant folder prefix.

    Variants are swapped explicitly: ``_load`` reads the turbo variant (the declared download
    and the default of ``variant``), so ``load()`` does the heavy work once, where the worker
    times it, budgets it and reports its failures, and a loaded model serves default jobs at
    once. A job asking for another variant gets it in ``_generate`` (:meth:`_use_variant`):
    the current variant's networks are dropped *before* the other is read, so memory never holds
    two (the VRAM budget counts one variant), and the swap is reported as a ``load`` stage. The
    variant then stays until a job asks for another (a queue of same-variant jobs reads it
    once). Loading lazily on the first job instead was rejected: ``load()`` would hide the cost
    and the errors in the first job. The turbo VAE (``decoding="flashvdm"``) and the paint
    models (``texture="paint"``) are optional parts: read on first use, kept until unload.
    """

    repo_id: ClassVar[str]
    folder_prefix: ClassVar[str]
    turbo_vae_folder: ClassVar[str]  # the FlashVDM turbo VAE's subfolder in its repo
    # texture: Hunyuan3D-Paint on a given mesh (the artist's), its geometry kept.
    tasks = ("image", "texture")
    parameters = PARAMETERS
    license = LICENSE
    license_url = LICENSE_URL
    components = {"paint": PAINT_WEIGHTS}
    cuda_dtype = "float16"  # upstream loads model.fp16.safetensors in float16
    stage_weights = {
        "conditioning": 0.01, "sampling": 0.07, "decoding": 0.45, "meshing": 0.12, "texture": 0.35,
    }  # fmt: skip
    out_of_memory_hint = (
        "Lower octree_resolution or num_chunks, use the turbo variant, or close other GPU "
        "programs."
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self._models: ShapeModels | None = None
        self._variant = ""  # the variant in self._models
        self._paint_models: tuple[Any, Any] | None = None  # (delight pipeline, PaintModels)

    @classmethod
    def variant_folder(cls, variant: str) -> str:
        return cls.folder_prefix + VARIANT_SUFFIX[variant]

    # --- hooks ----------------------------------------------------------------------------------

    def _load(self, device: str, dtype: str) -> None:
        self._read_variant(DEFAULT_VARIANT, device, dtype)

    def _check(self, request: GenerationRequest) -> None:
        self._variant_dir(request.parameters["variant"])
        if request.parameters["texture"] == "paint" or request.task == "texture":
            self._paint_dirs()
        if request.task == "texture" and not request.images:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD,
                f"{self.id} paints from an image: send one, or a prompt through image-bridge",
                field="images",
                hint="model image-bridge with parameters.image_model set to this model turns "
                "a prompt into the image first",
            )
        if self.max_images == 1:
            return
        views = [image.view for image in request.images]
        unknown = sorted(set(views) - set(VIEW_INDEX))
        if unknown:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"unknown view(s) {unknown}; this model takes {', '.join(VIEW_INDEX)}",
                field="images",
            )
        if len(set(views)) != len(views):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "each view may be given once", field="images"
            )

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        import numpy as np

        from backend.models.hunyuan3d.pipeline import ShapePipeline
        from backend.models.hunyuan3d.preprocess import condition_images

        parameters = request.parameters
        if request.task == "texture":
            return self._texture(request, progress, cancel)
        models = self._use_variant(parameters["variant"], progress)
        images, views = condition_images(
            request.images, models.config.image_processor, multi_view=self.max_images > 1
        )
        settings = self._settings(request)
        warnings = self._flashvdm_vae(models) if settings.decoding == "flashvdm" else []

        def on_event(stage: str, step: int, total: int) -> None:
            progress(stage, step, total)
            cancel.raise_if_cancelled()

        try:
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
        if parameters["texture"] == "paint":
            return self._paint(request, result.vertices, result.faces, name, warnings, progress,
                               cancel)  # fmt: skip
        return RawAsset(result.vertices, result.faces, name=name, warnings=warnings)

    def _texture(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        """Task texture: paint the given mesh; its vertices, faces and UVs go on unchanged."""
        mesh = request.mesh
        if mesh is None:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD, "task 'texture' needs a mesh", field="mesh"
            )
        # The shape stages are skipped: "meshing" says whose mesh is painted, then "texture".
        progress("meshing", 1, 1, f"your mesh: {len(mesh.faces)} faces")
        cancel.raise_if_cancelled()
        painted = self._paint(request, mesh.vertices, mesh.faces, mesh.name or self.id,
                              list(mesh.warnings), progress, cancel)  # fmt: skip
        painted.uvs = mesh.uvs  # keep_uvs paints into the artist's layout
        return painted

    def _release(self) -> None:
        self._models = None
        self._variant = ""
        self._paint_models = None

    # --- variants ---------------------------------------------------------------------------

    def _use_variant(self, variant: str, progress: ProgressCallback) -> ShapeModels:
        """The loaded networks of ``variant``, swapping the current variant out for it."""
        if self._models is not None and self._variant == variant:
            return self._models
        assert self.device is not None  # the template's not-loaded guard ran
        progress("load", 0, 1, f"loading the {variant} variant of {self.id}")
        models = self._read_variant(variant, self.device, self.dtype)
        progress("load", 1, 1, f"{variant} variant ready")
        return models

    def _read_variant(self, variant: str, device: str, dtype: str) -> ShapeModels:
        from backend.models.common.torch_dtypes import torch_dtype
        from backend.models.hunyuan3d.loading import load_shape_models

        folder = self._variant_dir(variant)
        if self._models is not None:  # one variant in memory at a time
            self._models, self._variant = None, ""
            if device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
        self._models = load_shape_models(folder, device, torch_dtype(dtype))
        self._variant = variant
        return self._models

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
                field="parameters.variant",
                hint=f"run `dreamcad-backend download {self.id}` (turbo), or add the "
                f"{self.variant_folder(variant)}/ folder from {self.repo_id}",
            )
        return folder

    def _settings(self, request: GenerationRequest) -> ShapeSettings:
        from backend.models.hunyuan3d.pipeline import ShapeSettings

        parameters = request.parameters
        decoding = {"octree": "hierarchical"}.get(parameters["decoding"], parameters["decoding"])
        return ShapeSettings(
            steps=parameters["steps"] or DEFAULT_STEPS[parameters["variant"]],
            guidance_scale=parameters["guidance_scale"],
            seed=request.seed,
            octree_resolution=parameters["octree_resolution"],
            num_chunks=parameters["num_chunks"],
            decoding=decoding,
            adaptive_kv=parameters["adaptive_kv"],
        )

    # --- optional parts: the turbo VAE, the paint models ----------------------------------------

    def _flashvdm_vae(self, models: ShapeModels) -> list[str]:
        """Attach the turbo VAE (the ``turbo-vae`` component's, else a full clone's) to the
        variant once -> warnings (one when it is missing: the variant's own VAE decodes)."""
        from backend.models.hunyuan3d.loading import attach_turbo_vae

        bases = (self.component_dirs.get("turbo-vae"), self.weights_dir)
        if attach_turbo_vae(models, bases, self.turbo_vae_folder):
            return []
        return [
            f"decoding=flashvdm used {self.id}'s own VAE: the turbo VAE FlashVDM was distilled "
            f"with is not downloaded (run `dreamcad-backend download {self.id} --with turbo-vae "
            "--only`)"
        ]

    def _paint_dirs(self) -> tuple[Path, Path]:
        """The delight and paint folders (from tencent/Hunyuan3D-2): those of the ``paint``
        component when it was found, else inside the shape weights folder."""
        base = self.component_dirs.get("paint") or self.weights_dir or Path("<no weights>")
        folders = (base / DELIGHT_FOLDER, base / PAINT_FOLDER)
        for folder in folders:
            if not (folder / "model_index.json").is_file():
                raise ProtocolError(
                    ErrorCode.WEIGHTS_MISSING,
                    f"texture=paint needs {folder.name}/ (from {PAINT_WEIGHTS.repo_id}); "
                    f"not found in {base}",
                    field="parameters.texture",
                    hint=f"run `dreamcad-backend download {self.id} --with paint --only`, or "
                    "use texture=none",
                )
        return folders

    def _load_paint(self) -> tuple[Any, Any]:
        if self._paint_models is None:
            from backend.models.common.torch_dtypes import torch_dtype
            from backend.models.hunyuan3d.paint import delight as paint_delight
            from backend.models.hunyuan3d.paint import loading as paint_loading

            assert self.device is not None
            delight_dir, paint_dir = self._paint_dirs()
            self._paint_models = (
                paint_delight.load_delight(delight_dir, self.device, self.dtype),
                paint_loading.load_paint_models(paint_dir, self.device, torch_dtype(self.dtype)),
            )
        return self._paint_models

    def _paint(
        self, request: GenerationRequest, vertices: np.ndarray, faces: np.ndarray, name: str,
        warnings: list[str], progress: ProgressCallback, cancel: CancelToken,
    ) -> RawAsset:  # fmt: skip
        """The full-resolution shape with Hunyuan3D-Paint's six views of it, painted from the
        front view (or the only one); the geometry pipeline bakes them once."""
        from backend.models.common.stage_folding import FoldedProgress
        from backend.models.hunyuan3d.paint.texture import PaintSettings, paint_views

        delight_pipeline, paint_models = self._load_paint()
        front = next((i for i in request.images if i.view == "front"), request.images[0])
        settings = PaintSettings(
            view_size=request.parameters["paint_view_size"],
            steps=request.parameters["paint_steps"],
            delight_steps=request.parameters["delight_steps"], seed=request.seed,
        )  # fmt: skip
        folded = FoldedProgress(progress, "texture", PAINT_STAGE_WEIGHTS)
        views = paint_views(vertices, faces, front.pixels, delight_pipeline, paint_models,
                            settings, folded, cancel)  # fmt: skip
        return RawAsset(vertices, faces, views=views, name=name, warnings=warnings)


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
    tasks = ("multi_image", "image", "texture")
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
