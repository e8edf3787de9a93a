"""``image-bridge``: text -> picture (any diffusers text-to-image pipeline) -> 3D (any image model).

One job, one bar: stage ``text_to_image`` runs the picture model (SDXL-Turbo by default, 1-4
steps, or any pipeline named by hub repo id or local folder in ``text_model``), then stage
``image_to_3d`` runs the image model named in ``image_model`` (any installed adapter with the
``image`` task, created through the model registry) with its own stages folded into ours. The
picture is passed on as the preview of the first stage so the panel can show it early.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    GenerationRequest,
    ImagePixels,
    ModelAdapter,
    ProgressCallback,
    WeightFile,
    WeightsSource,
    resolve_parameters,
)
from backend.models.image_bridge.text_to_image import (
    load_text_to_image,
    locate_pipeline,
    run_text_to_image,
)
from backend.models.nested import NestedAdapters
from backend.models.common.stage_folding import FoldedProgress
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

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
    tasks = ("text",)
    cuda_dtype = "float16"  # the text-to-image pipeline and the image model it feeds
    license = "model-dependent (SDXL-Turbo: Stability AI non-commercial community licence)"
    license_url = "https://huggingface.co/stabilityai/sdxl-turbo/blob/main/LICENSE.md"
    vram_mb = 12_000
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
    )
    stage_weights = {"text_to_image": 0.35, "image_to_3d": 0.65}
    takes_registry = True  # the registry hands itself over, so image models come from it
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

    def __init__(self, weights_dir: Path | None = None, registry: Any = None) -> None:
        """``registry``: a ``ModelRegistry`` to create image models from (default: installed)."""
        super().__init__(weights_dir)
        self.nested = NestedAdapters(registry)
        self._text: tuple[Path, Any] | None = None  # (folder, pipeline)

    @property
    def registry(self) -> Any:
        return self.nested.registry

    def check_inputs(self, request: GenerationRequest) -> None:
        super().check_inputs(request)
        params = resolve_parameters(self.parameters, request.parameters)
        cls = self.registry.adapter_class(params["image_model"])
        if "image" not in cls.tasks:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"image_model {params['image_model']!r} does not take an image; it does "
                f"{cls.tasks}",
                field="parameters.image_model",
            )

    def load(self, device: str, dtype: str = "float32") -> None:
        """Remember the device; models load on first use (they depend on the request)."""
        self.nested.place(device, dtype)

    def unload(self) -> None:
        self.nested.release()
        self._text = None

    def _text_pipeline(self, name: str) -> Any:
        folder = locate_pipeline(name, DEFAULT_TEXT_MODEL, self.weights_dir)
        if self._text is None or self._text[0] != folder:
            self._text = None  # drop the old one before loading the next
            self._text = (folder, load_text_to_image(folder, self.nested.device,
                                                     self.nested.dtype))
        return self._text[1]

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        params = resolve_parameters(self.parameters, request.parameters)
        progress("text_to_image", 0, params["steps"], "loading the picture model")
        text_pipeline = self._text_pipeline(params["text_model"])
        cancel.raise_if_cancelled()
        picture = run_text_to_image(
            text_pipeline, request.prompt + params["prompt_suffix"], steps=params["steps"],
            guidance_scale=params["guidance_scale"], size=params["image_size"],
            seed=request.seed, progress=progress, cancel=cancel, stage="text_to_image",
        )
        progress("text_to_image", params["steps"], params["steps"], "picture ready", picture)
        image_adapter = self.nested.get(params["image_model"])
        inner_request = GenerationRequest(
            task="image", images=(ImagePixels(picture),), seed=request.seed,
            target_faces=request.target_faces, texture_size=request.texture_size,
        )
        image_adapter.check_inputs(inner_request)
        folded = FoldedProgress(progress, "image_to_3d", image_adapter.stage_weights)
        asset = image_adapter.generate(inner_request, folded, cancel)
        folded.finish("reconstructed")
        asset.name = f"{self.id}-{request.seed}"
        return asset
