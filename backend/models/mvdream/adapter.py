"""``mvdream``: prompt -> four MVDream views -> cut-outs -> 3D -> textured from the views.

The card and the hooks only. Stage ``views`` samples the views (pipeline.py: DDIM, guidance)
at the elevation the reconstructor wants; ``cutout`` cuts each view's plain background away
through the shared background module (cutout.py); ``reconstruct`` hands the views to a
multi-view reconstructor (``hunyuan3d-2mv``: front/left/back/right at azimuth 0/90/180/270,
task ``multi_image``), or, when none is installed, inflates the front view (the built-in
``inflate``); ``texture`` fits the views' cameras to its surface and hands the views over in
place of the reconstructor's colours (the geometry pipeline's bake projects them, occlusion
included). The reconstructor is another installed model, taken from the worker's model cache
(``inner_model``), so it counts against the VRAM budget and is shared with direct jobs. One job,
one bar: the reconstructor's own stages are folded into ``reconstruct``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    GenerationRequest,
    ImagePixels,
    ModelAdapter,
    ProgressCallback,
    WeightFile,
    WeightsSource,
    inner_errors,
)
from backend.models.common.stage_folding import FoldedProgress
from backend.models.mvdream.config import CHECKPOINT, CONFIG_FILE
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema
from shared_protocol.parameters import resolve_parameters

if TYPE_CHECKING:
    pass

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
    cuda_dtype = "float16"  # upstream samples in fp16; the reconstructor picks its own dtype
    license = "CreativeML OpenRAIL-M"
    license_url = "https://huggingface.co/MVDream/MVDream"
    # The views' model alone (measured peak 2.7 GB on an H100 at 256 px, fp16); the
    # reconstructor is another model in the cache and counts its own.
    vram_mb = 3_000
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
    out_of_memory_hint = (
        "Lower the view size or the mesh grid, use the inflate reconstructor, or close other "
        "GPU programs."
    )
    weights = WeightsSource(
        "MVDream/MVDream",
        "main",  # no commit sha found offline; pin after the first download
        (WeightFile(CHECKPOINT),),
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: Any = None  # MVDreamPipeline

    # --- hooks --------------------------------------------------------------------------------

    def _load(self, device: str, dtype: str) -> None:
        import tempfile

        from backend.models.common.torch_dtypes import torch_dtype
        from backend.models.mvdream.config import SD21_BASE_4VIEW, MVDreamConfig, with_text_tower_of
        from backend.models.mvdream.loading import build_models, read_checkpoint
        from backend.models.mvdream.pipeline import MVDreamPipeline
        from backend.models.mvdream.tokenizer import load_tokenizer

        assert self.weights_dir is not None  # the template checked the weights are present
        config_path = self.weights_dir / CONFIG_FILE
        config = MVDreamConfig.from_yaml(config_path) if config_path.is_file() else SD21_BASE_4VIEW
        state = read_checkpoint(self.weights_dir / CHECKPOINT)
        models = build_models(state, with_text_tower_of(config, state), device, torch_dtype(dtype))
        cache = Path(tempfile.gettempdir()) / "dreamcad"
        self.pipeline = MVDreamPipeline(models, load_tokenizer(self.weights_dir, cache))

    def _release(self) -> None:
        self.pipeline = None

    def _check(self, request: GenerationRequest) -> None:
        params = request.parameters
        if params["image_size"] % 8:
            raise ProtocolError(ErrorCode.INVALID_PARAMETER, "image_size must be a multiple of 8",
                                field="parameters.image_size")
        name = self._pick_reconstructor(params["reconstructor"])
        catalogue = self.catalogue
        if name not in catalogue.ids():
            raise ProtocolError(
                ErrorCode.UNKNOWN_MODEL,
                f"no reconstructor {name!r}; installed: {', '.join(catalogue.ids()) or 'none'}",
                field="parameters.reconstructor",
            )
        cls = catalogue.adapter_class(name)
        if "multi_image" not in cls.tasks and "image" not in cls.tasks:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"reconstructor {name!r} takes no images (it does {', '.join(cls.tasks)})",
                field="parameters.reconstructor",
            )
        if not catalogue.create(name).weights_present():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"the weights of reconstructor {name!r} are not on this machine",
                field="parameters.reconstructor",
                hint=f"Run `dreamcad-backend download {name}`, or use reconstructor 'auto'.",
            )
        # The reconstructor's own check of what we will set on it (its mesh grid's range).
        with inner_errors("reconstructor", name, "parameters.reconstructor",
                           _our_fields(cls)):
            resolve_parameters(cls.parameters, _inner_parameters(cls, params))

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.mvdream.back_projection import painted_views
        from backend.models.mvdream.camera import evenly_spaced
        from backend.models.mvdream.cutout import cut_out_views

        params = request.parameters
        out = self.pipeline(
            request.prompt + params["prompt_suffix"],
            negative_prompt=params["negative_prompt"], steps=params["steps"],
            guidance_scale=params["guidance_scale"], elevation=params["elevation"],
            azimuths=evenly_spaced(4, params["azimuth_start"]), image_size=params["image_size"],
            seed=request.seed, progress=progress, cancel=cancel,
        )
        progress("views", 1, 1, "views ready", np.concatenate(list(out.views), axis=1))
        progress("cutout", 0, 1, "cutting the subject out of each view")
        cancel.raise_if_cancelled()
        cutouts, masks, warnings = cut_out_views(out.views)
        progress("cutout", 1, 1, "backgrounds removed")
        cancel.raise_if_cancelled()
        asset = self._reconstruct(request, cutouts, out.azimuths, progress, cancel, warnings)
        progress("texture", 0, 1, "fitting the views' cameras to the surface")
        cancel.raise_if_cancelled()
        views = painted_views(asset.vertices, out.views, masks, out.elevation, out.azimuths)
        textured = RawAsset(
            vertices=asset.vertices, faces=asset.faces, views=views,
            material_field=asset.material_field,
            roughness=asset.roughness, metallic=asset.metallic,
            name=f"{self.id}-{request.seed}", warnings=list(asset.warnings) + warnings,
        )
        progress("texture", 1, 1, "textured from the views")
        cancel.raise_if_cancelled()
        return textured

    # --- parts of the hooks -------------------------------------------------------------------


    def _pick_reconstructor(self, name: str) -> str:
        if name != "auto":
            return name
        catalogue = self.catalogue
        if MULTI_VIEW_RECONSTRUCTOR in catalogue.ids() and catalogue.create(
            MULTI_VIEW_RECONSTRUCTOR
        ).weights_present():
            return MULTI_VIEW_RECONSTRUCTOR
        return FALLBACK_RECONSTRUCTOR

    def _reconstruct(
        self,
        request: GenerationRequest,
        cutouts: list[np.ndarray],
        azimuths: tuple[float, ...],
        progress: ProgressCallback,
        cancel: CancelToken,
        warnings: list[str],
    ) -> RawAsset:
        """The cut-out views -> the reconstructor's asset; its stages fold into ``reconstruct``."""
        params = request.parameters
        name = self._pick_reconstructor(params["reconstructor"])
        if params["reconstructor"] == "auto" and name == FALLBACK_RECONSTRUCTOR:
            warnings.append(f"{MULTI_VIEW_RECONSTRUCTOR} is not installed: the shape is the "
                            "inflated front view, textured from all four views")
        cls = self.catalogue.adapter_class(name)
        names = [VIEW_NAMES.get(round(a % 360.0, 6)) for a in azimuths]
        common = {"seed": request.seed, "target_faces": request.target_faces,
                  "texture_size": request.texture_size,
                  "parameters": _inner_parameters(cls, params)}
        if "multi_image" in cls.tasks and None not in names:
            images = tuple(ImagePixels(c, view=n) for c, n in zip(cutouts, names, strict=True))
            inner_request = GenerationRequest(task="multi_image", images=images, **common)
        else:
            front = names.index("front") if "front" in names else 0
            inner_request = GenerationRequest(task="image", images=(ImagePixels(cutouts[front]),),
                                              **common)
        progress("reconstruct", 0, 1, f"loading {name}")
        cancel.raise_if_cancelled()
        with (self.inner_model(name) as inner,
              inner_errors("reconstructor", name, "parameters.reconstructor", _our_fields(cls))):
            inner_request = inner.check_inputs(inner_request)
            folded = FoldedProgress(progress, "reconstruct", inner.stage_weights)
            asset = inner.generate(inner_request, folded, cancel)
        folded.finish(f"reconstructed by {name}")
        cancel.raise_if_cancelled()
        return asset


def _resolution_name(cls: type[ModelAdapter]) -> str | None:
    """The name of the reconstructor's mesh-grid parameter, if it has one."""
    names = {p.name for p in cls.parameters}
    return next((n for n in RESOLUTION_PARAMETERS if n in names), None)


def _inner_parameters(cls: type[ModelAdapter], params: Mapping[str, Any]) -> dict[str, Any]:
    """What we set on the reconstructor: its mesh grid (when asked for), and no second cut-out
    (the views are cut out already: their alpha is the mask)."""
    inner: dict[str, Any] = {}
    name = _resolution_name(cls)
    if name and params["reconstructor_resolution"]:
        inner[name] = params["reconstructor_resolution"]
    if any(p.name == "background" for p in cls.parameters):
        inner["background"] = "none"
    return inner


def _our_fields(cls: type[ModelAdapter]) -> dict[str, str]:
    """The reconstructor's fields we set from one of ours."""
    name = _resolution_name(cls)
    return {f"parameters.{name}": "parameters.reconstructor_resolution"} if name else {}

