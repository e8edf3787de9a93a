"""``mvdream``: prompt -> four MVDream views -> cut-outs -> 3D -> textured from the views.

The fast text-to-3D path. Stage ``views`` samples the views (DDIM, guidance) at the elevation
the reconstructor wants; ``cutout`` keys each view's plain background away; ``reconstruct``
hands the views to a multi-view reconstructor (``hunyuan3d-2mv``: front/left/back/right at
azimuth 0/90/180/270, task ``multi_image``) found through the model registry, or, when none is
installed, inflates the front view (the built-in ``inflate``); ``texture`` fits the views'
cameras to its surface and hands the views over in place of the reconstructor's colours (the
geometry pipeline's bake projects them, occlusion included). One job, one bar: the
reconstructor's own stages are folded into ``reconstruct``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    GenerationRequest,
    InputImage,
    ModelAdapter,
    ProgressCallback,
    WeightFile,
    WeightsSource,
    resolve_parameters,
)
from backend.models.device_errors import typed_device_errors
from backend.models.mvdream.back_projection import painted_views
from backend.models.mvdream.camera import evenly_spaced
from backend.models.mvdream.config import SD21_BASE_4VIEW, MVDreamConfig, with_text_tower_of
from backend.models.mvdream.loading import CHECKPOINT, build_models, read_checkpoint
from backend.models.mvdream.pipeline import MVDreamPipeline
from backend.models.mvdream.tokenizer import load_tokenizer
from backend.models.nested import NestedAdapters
from backend.models.stage_folding import FoldedProgress
from backend.models.torch_dtypes import torch_dtype
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

CONFIG_FILE = "sd-v2-base.yaml"  # optional: upstream's config beside the checkpoint
MULTI_VIEW_RECONSTRUCTOR = "hunyuan3d-2mv"
FALLBACK_RECONSTRUCTOR = "inflate"
# Azimuth (degrees, backend frame) -> the view name multi-view reconstructors take.
# Hunyuan3D-2mv's names are object-centred: "left" is the picture of the subject's left side
# (its view slots run front, left, back, right = 0..3, a quarter turn each). Our subject faces
# +Z with +Y up, so its left side is +X, where MVDream's azimuth-90 camera sits (camera.py:
# azimuth 0 on +Z, 90 on +X). So azimuth 90 is "left" and 270 "right"; checked in
# tests/backend/models/mvdream/test_adapter.py against Hunyuan's VIEW_INDEX and our cameras.
VIEW_NAMES = {0.0: "front", 90.0: "left", 180.0: "back", 270.0: "right"}
# Parameters that set a reconstructor's mesh grid, in the order they are looked for.
RESOLUTION_PARAMETERS = ("octree_resolution", "resolution", "mc_resolution", "grid_size")


class MVDreamAdapter(ModelAdapter):
    id = "mvdream"
    name = "MVDream (text -> 3D)"
    description = "Four consistent views from a prompt, reconstructed and textured from them."
    tasks = ("text",)
    cuda_dtype = "float16"  # the multi-view UNet and the 2mv reconstructor both in fp16
    license = "CreativeML OpenRAIL-M"
    license_url = "https://huggingface.co/MVDream/MVDream"
    vram_mb = 8_000
    parameters = (
        ParameterSchema("steps", "int", 30, "Steps", "DDIM steps (upstream default 50)", 1, 200),
        ParameterSchema("guidance_scale", "float", 7.5, "Guidance",
                        "classifier-free guidance scale", 1.0, 30.0),
        ParameterSchema("elevation", "float", 0.0, "Elevation",
                        "camera elevation of the views in degrees", -10.0, 45.0),
        ParameterSchema("azimuth_start", "float", 0.0, "First azimuth",
                        "azimuth of the first view; 0 = front", 0.0, 360.0),
        ParameterSchema("image_size", "int", 256, "View size", "pixels per view side", 16, 512),
        ParameterSchema("negative_prompt", "str", "", "Negative prompt", "what to avoid"),
        ParameterSchema("prompt_suffix", "str", ", 3d asset", "Prompt suffix",
                        "appended to the prompt, as upstream's scripts do"),
        ParameterSchema("reconstructor", "str", "auto", "Reconstructor",
                        "model id turning the views into a mesh; auto: hunyuan3d-2mv if "
                        "installed, else inflate"),
        ParameterSchema("reconstructor_resolution", "int", 0, "Mesh grid",
                        "the reconstructor's mesh grid per side; 0 = its own default", 0, 512),
    )
    stage_weights = {"views": 0.55, "cutout": 0.03, "reconstruct": 0.37, "texture": 0.05}
    weights = WeightsSource(
        "MVDream/MVDream",
        "main",  # no commit sha found offline; pin after the first download
        (WeightFile(CHECKPOINT),),
    )

    takes_registry = True  # the registry hands itself over, so reconstructors come from it

    def __init__(self, weights_dir: Path | None = None, registry: Any = None) -> None:
        super().__init__(weights_dir)
        self.nested = NestedAdapters(registry)
        self.pipeline: MVDreamPipeline | None = None

    @property
    def registry(self) -> Any:
        return self.nested.registry

    def _config(self) -> MVDreamConfig:
        assert self.weights_dir is not None
        path = self.weights_dir / CONFIG_FILE
        return MVDreamConfig.from_yaml(path) if path.is_file() else SD21_BASE_4VIEW

    def load(self, device: str, dtype: str = "float32") -> None:
        if not self.weights_present() or self.weights_dir is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING, f"mvdream: {CHECKPOINT} not found",
                hint="run `dreamcad-backend download mvdream`",
            )
        with typed_device_errors(self.id):
            state = read_checkpoint(self.weights_dir / CHECKPOINT)
            config = with_text_tower_of(self._config(), state)
            models = build_models(state, config, device, torch_dtype(dtype))
        cache = Path(tempfile.gettempdir()) / "dreamcad"
        self.pipeline = MVDreamPipeline(models, load_tokenizer(self.weights_dir, cache))
        self.nested.place(device, dtype)

    def unload(self) -> None:
        self.nested.release()
        self.pipeline = None

    def _pick_reconstructor(self, name: str) -> str:
        if name != "auto":
            return name
        installed = self.registry.ids()
        if MULTI_VIEW_RECONSTRUCTOR in installed:
            cls = self.registry.adapter_class(MULTI_VIEW_RECONSTRUCTOR)
            candidate = cls(weights_dir=self.registry.weights_dir(MULTI_VIEW_RECONSTRUCTOR))
            if candidate.weights_present():
                return MULTI_VIEW_RECONSTRUCTOR
        return FALLBACK_RECONSTRUCTOR

    def check_inputs(self, request: GenerationRequest) -> None:
        super().check_inputs(request)
        params = resolve_parameters(self.parameters, request.parameters)
        if params["image_size"] % 8:
            raise ProtocolError(ErrorCode.INVALID_PARAMETER, "image_size must be a multiple of 8",
                                field="body.parameters.image_size")
        name = self._pick_reconstructor(params["reconstructor"])
        tasks = self.registry.adapter_class(name).tasks
        if "multi_image" not in tasks and "image" not in tasks:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"reconstructor {name!r} takes no images (it does {tasks})",
                field="body.parameters.reconstructor",
            )

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        if self.pipeline is None:
            raise ProtocolError(ErrorCode.MODEL_FAILED, "mvdream: generate() before load()")
        params = resolve_parameters(self.parameters, request.parameters)
        azimuths = evenly_spaced(4, params["azimuth_start"])
        with typed_device_errors(self.id):
            out = self.pipeline(
                request.prompt + params["prompt_suffix"],
                negative_prompt=params["negative_prompt"], steps=params["steps"],
                guidance_scale=params["guidance_scale"], elevation=params["elevation"],
                azimuths=azimuths, image_size=params["image_size"], seed=request.seed,
                progress=progress, cancel=cancel,
            )
        progress("views", 1, 1, "views ready", np.concatenate(list(out.views), axis=1))
        cutouts, masks = _cut_out(out.views)
        progress("cutout", 1, 1, "backgrounds removed")
        cancel.raise_if_cancelled()
        asset, warnings = self._reconstruct(params, cutouts, out.azimuths, request, progress,
                                            cancel)
        progress("texture", 0, 1, "fitting the views' cameras to the surface")
        views = painted_views(asset.vertices, out.views, masks, out.elevation, out.azimuths)
        textured = RawAsset(
            vertices=asset.vertices, faces=asset.faces, views=views,
            material_field=asset.material_field,
            roughness=asset.roughness, metallic=asset.metallic,
            name=f"{self.id}-{request.seed}", warnings=asset.warnings + warnings,
        )
        progress("texture", 1, 1, "textured from the views")
        return textured

    def _reconstruct(self, params, cutouts, azimuths, request, progress, cancel):
        name = self._pick_reconstructor(params["reconstructor"])
        warnings: list[str] = []
        if params["reconstructor"] == "auto" and name == FALLBACK_RECONSTRUCTOR:
            warnings.append(f"{MULTI_VIEW_RECONSTRUCTOR} is not installed: the shape is the "
                            "inflated front view, textured from all four views")
        adapter = self.nested.get(name)
        names = [VIEW_NAMES.get(round(a % 360.0, 6)) for a in azimuths]
        inner_parameters = _resolution_parameter(adapter, params["reconstructor_resolution"])
        if "multi_image" in adapter.tasks and None not in names:
            inner = GenerationRequest(
                task="multi_image", seed=request.seed,
                images=tuple(InputImage(c, view=n) for c, n in zip(cutouts, names, strict=True)),
                parameters=inner_parameters, target_faces=request.target_faces,
                texture_size=request.texture_size,
            )
        else:
            front = names.index("front") if "front" in names else 0
            inner = GenerationRequest(task="image", images=(InputImage(cutouts[front]),),
                                      seed=request.seed, parameters=inner_parameters,
                                      target_faces=request.target_faces,
                                      texture_size=request.texture_size)
        adapter.check_inputs(inner)
        folded = FoldedProgress(progress, "reconstruct", adapter.stage_weights)
        asset = adapter.generate(inner, folded, cancel)
        folded.finish(f"reconstructed by {name}")
        return asset, warnings


def _resolution_parameter(adapter: ModelAdapter, resolution: int) -> dict[str, int]:
    """``{name: resolution}`` for the adapter's mesh-grid parameter; empty for 0 or none."""
    names = {p.name for p in adapter.parameters}
    found = next((n for n in RESOLUTION_PARAMETERS if n in names), None)
    return {found: resolution} if resolution and found else {}


def _cut_out(views: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """(n, h, w, 3) views -> RGBA cut-outs and (n, h, w) bool masks (plain-background key)."""
    from backend.models.inflate import subject_mask

    cutouts, masks = [], []
    for view in views:
        rgba = np.concatenate([view, np.full((*view.shape[:2], 1), 255, np.uint8)], axis=-1)
        try:
            mask = subject_mask(rgba, "color_key")
        except ProtocolError:
            mask = np.ones(view.shape[:2], bool)  # no plain background found: keep it all
        rgba[..., 3] = np.where(mask, 255, 0).astype(np.uint8)
        cutouts.append(rgba)
        masks.append(mask)
    return cutouts, np.stack(masks)
