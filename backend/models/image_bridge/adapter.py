"""``image-bridge``: text -> picture (any diffusers text-to-image pipeline) -> 3D (any image model).

The card and the hooks only. One job, one bar: stage ``text_to_image`` runs the picture model
(SDXL-Turbo, the bridge's own weights, by default, 1-4 steps; or any pipeline named by hub repo
id or local folder in ``text_model``), then stage ``image_to_3d`` runs the image model named in
``image_model`` (any installed adapter with the ``image`` task), taken from the worker's model
cache (``inner_model``: inside the VRAM budget, shared with direct jobs), with its stages folded
into ours. The picture reaches it through its own template, so the shared cut-out runs on it
once, by the ``background`` method given here. The picture is also the first stage's preview.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from backend.models.common.background_choice import BACKGROUND_PARAMETER
from backend.models.common.stage_folding import FoldedProgress
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

if TYPE_CHECKING:
    pass

DEFAULT_TEXT_MODEL = "stabilityai/sdxl-turbo"
DEFAULT_IMAGE_MODEL = "inflate"
# Image-to-3D models want one whole object, centred, on a plain background.
OBJECT_SUFFIX = ", a single object, centred, full view, plain white background, studio lighting"
_FP16 = "diffusion_pytorch_model.fp16.safetensors"


class ImageBridgeAdapter(ModelAdapter):
    id = "image-bridge"
    name = "Text -> image -> 3D"
    description = (
        "A prompt to a picture with a fast text-to-image model, then to 3D with any installed "
        "image model."
    )
    # texture: a prompt -> a picture -> the image model's own texture task on the given mesh.
    tasks = ("text", "texture")
    cuda_dtype = "float16"  # SDXL-Turbo's published weights are fp16
    license = "model-dependent (SDXL-Turbo: Stability AI non-commercial community licence)"
    license_url = "https://huggingface.co/stabilityai/sdxl-turbo/blob/main/LICENSE.md"
    # The picture model alone (SDXL-Turbo in fp16: ~7 GB of weights, 512 px); the image model
    # is another model in the cache and counts its own.
    vram_mb = 8_000
    parameters = (
        ParameterSchema("text_model", "str", DEFAULT_TEXT_MODEL, "Picture model",
                        "diffusers text-to-image pipeline: hub repo id or local folder"),
        ParameterSchema("image_model", "str", DEFAULT_IMAGE_MODEL, "3D model",
                        "id of an installed image-to-3D model"),
        ParameterSchema("steps", "int", 1, "Picture steps", "text-to-image steps", 1, 50),
        ParameterSchema("guidance_scale", "float", 0.0, "Picture guidance",
                        "0 for turbo/schnell models", 0.0, 20.0),
        ParameterSchema("image_size", "int", 512, "Picture size", "pixels per side", 32, 1536),
        ParameterSchema("prompt_suffix", "str", OBJECT_SUFFIX, "Prompt suffix",
                        "appended to the prompt so the picture suits 3D reconstruction"),
        BACKGROUND_PARAMETER,  # handed to the image model, which cuts the picture out with it
        ParameterSchema("image_model_parameters", "str", "{}", "3D model parameters",
                        "JSON object of the 3D model's own parameters (e.g. its paint steps)"),
    )
    stage_weights = {"text_to_image": 0.35, "image_to_3d": 0.65}
    out_of_memory_hint = (
        "Lower the picture size, pick a smaller picture or 3D model, or close other GPU programs."
    )
    weights = WeightsSource(
        "stabilityai/sdxl-turbo",
        "647e47abb87343a8a42170b6f73255d72443ef70",
        tuple(
            WeightFile(path)
            for path in (
                "model_index.json",
                "scheduler/scheduler_config.json",
                "text_encoder/config.json",
                "text_encoder/model.fp16.safetensors",
                "text_encoder_2/config.json",
                "text_encoder_2/model.fp16.safetensors",
                "tokenizer/vocab.json",
                "tokenizer/merges.txt",
                "tokenizer/special_tokens_map.json",
                "tokenizer/tokenizer_config.json",
                "tokenizer_2/vocab.json",
                "tokenizer_2/merges.txt",
                "tokenizer_2/special_tokens_map.json",
                "tokenizer_2/tokenizer_config.json",
                "unet/config.json",
                f"unet/{_FP16}",
                "vae/config.json",
                f"vae/{_FP16}",
            )
        ),
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.text_folder: Path | None = None  # where the loaded picture model came from
        self.text_pipeline: Any = None  # a diffusers text-to-image pipeline

    # --- hooks --------------------------------------------------------------------------------

    def _load(self, device: str, dtype: str) -> None:
        """Load the default picture model (our own weights); requests may name another."""
        from backend.models.image_bridge.text_to_image import load_text_to_image

        assert self.weights_dir is not None  # the template checked the weights are present
        self.text_pipeline = load_text_to_image(self.weights_dir, device, dtype)
        self.text_folder = self.weights_dir

    def _release(self) -> None:
        self.text_pipeline = None
        self.text_folder = None

    def _check(self, request: GenerationRequest) -> None:
        from backend.models.image_bridge.text_to_image import locate_pipeline

        params = request.parameters
        name = params["image_model"]
        catalogue = self.catalogue
        if name not in catalogue.ids():
            raise ProtocolError(
                ErrorCode.UNKNOWN_MODEL,
                f"no image model {name!r}; installed: {', '.join(catalogue.ids()) or 'none'}",
                field="parameters.image_model",
            )
        tasks = catalogue.adapter_class(name).tasks
        if "image" not in tasks:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"image_model {name!r} does not take an image; it does {', '.join(tasks)}",
                field="parameters.image_model",
            )
        if request.task == "texture":
            texturing = [
                i for i in catalogue.ids() if "texture" in catalogue.adapter_class(i).tasks
            ]
            if "texture" not in tasks:
                raise ProtocolError(
                    ErrorCode.INVALID_PARAMETER,
                    f"image_model {name!r} does not texture a mesh",
                    field="parameters.image_model",
                    hint=f"pick one that does: {', '.join(texturing) or 'none installed'}",
                )
            if not request.prompt.strip():
                raise ProtocolError(
                    ErrorCode.MISSING_FIELD, "texture through image-bridge needs a prompt",
                    field="prompt",
                )  # fmt: skip
        if not catalogue.create(name).weights_present():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"the weights of image model {name!r} are not on this machine",
                field="parameters.image_model",
                hint=f"Run `dreamcad-backend download {name}`, or pick another image model.",
            )
        locate_pipeline(params["text_model"], DEFAULT_TEXT_MODEL, self.weights_dir)
        inner_parameters(params)

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.image_bridge.text_to_image import run_text_to_image

        params = request.parameters
        progress("text_to_image", 0, params["steps"], "loading the picture model")
        text_pipeline = self._text_pipeline(params["text_model"])
        cancel.raise_if_cancelled()
        picture = run_text_to_image(
            text_pipeline, request.prompt + params["prompt_suffix"], steps=params["steps"],
            guidance_scale=params["guidance_scale"], size=params["image_size"],
            seed=request.seed, progress=progress, cancel=cancel, stage="text_to_image",
        )
        progress("text_to_image", params["steps"], params["steps"], "picture ready", picture)
        cancel.raise_if_cancelled()
        name = params["image_model"]
        takes_background = any(
            p.name == "background" for p in self.catalogue.adapter_class(name).parameters
        )
        inner_request = GenerationRequest(
            task="texture" if request.task == "texture" else "image",
            images=(ImagePixels(picture),), seed=request.seed,
            parameters={**inner_parameters(params),
                        **({"background": params["background"]} if takes_background else {})},
            target_faces=request.target_faces, texture_size=request.texture_size,
            mesh=request.mesh,
        )
        with (self.inner_model(name) as inner,
              inner_errors("image model", name, "parameters.image_model")):
            inner_request = inner.check_inputs(inner_request)
            folded = FoldedProgress(progress, "image_to_3d", inner.stage_weights)
            asset = inner.generate(inner_request, folded, cancel)
        folded.finish(f"reconstructed by {name}")
        cancel.raise_if_cancelled()
        if request.task != "texture":  # a textured mesh keeps the artist's name
            asset.name = f"{self.id}-{request.seed}"
        return asset

    # --- parts of the hooks -------------------------------------------------------------------


    def _text_pipeline(self, name: str) -> Any:
        """The picture model ``name``, loaded on our device (swapping out the previous one)."""
        from backend.models.image_bridge.text_to_image import load_text_to_image, locate_pipeline

        folder = locate_pipeline(name, DEFAULT_TEXT_MODEL, self.weights_dir)
        if self.text_folder != folder:
            self.text_pipeline = self.text_folder = None  # drop the old one before the next
            assert self.device is not None  # the template's not-loaded guard ran
            self.text_pipeline = load_text_to_image(folder, self.device, self.dtype)
            self.text_folder = folder
        return self.text_pipeline


def inner_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """``image_model_parameters`` as a dict (the image model checks the names and values)."""
    import json

    try:
        value = json.loads(params["image_model_parameters"])
    except json.JSONDecodeError as error:
        value = error
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            "image_model_parameters must be a JSON object of the image model's parameters",
            field="parameters.image_model_parameters",
        )
    return value
