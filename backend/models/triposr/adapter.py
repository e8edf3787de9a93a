"""The ``triposr`` model adapter: one image -> a RawAsset with a colour field, via TripoSR.

Parameters are upstream CLI's options (foreground ratio 0.85, marching-cubes resolution 256,
chunk size 8192) plus the density threshold of upstream's ``extract_mesh`` and the choice of
background removal. Weights come from a local folder laid out like ``stabilityai/TripoSR``;
nothing is fetched. On CUDA the image encoder and transformer run under autocast in the
requested half dtype, the field query stays float32 (its exp density is threshold-sensitive).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from backend.models.common.torch_dtypes import DTYPES
from backend.models.triposr import inference
from backend.models.triposr.loading import load_model
from backend.models.triposr.model import TripoSRNet
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

OUT_OF_MEMORY_HINT = (
    "Lower chunk_size or mc_resolution, load in float16, or close other GPU programs."
)
PROGRESS_UPDATES = 32  # field-query progress events per generation, however many chunks
PREVIEW_SIZE = 128


class TripoSRAdapter(ModelAdapter):
    id = "triposr"
    name = "TripoSR"
    description = (
        "Single image -> textured mesh in about a second on a GPU (Stability AI and Tripo AI; "
        "triplane NeRF, marching cubes)."
    )
    tasks = ("image",)
    license = "MIT"
    license_url = "https://huggingface.co/stabilityai/TripoSR"
    vram_mb = 6000  # upstream README: about 6 GB at the default options
    max_images = 1
    # Revision: a commit of the hub repo quoted by several projects that pin it; the sha256 and
    # size of model.ckpt agree across them (not checked against the hub from here).
    weights = WeightsSource(
        repo_id="stabilityai/TripoSR",
        revision="5b521936b01fbe1890f6f9baed0254ab6351c04a",
        files=(
            WeightFile(
                "config.yaml",
                "74ca708ce086bf68e97709ea6b3d91f14717921c04691e84043f0eb8fcc68e62",
                987,
            ),
            WeightFile(
                "model.ckpt",
                "429e2c6b22a0923967459de24d67f05962b235f79cde6b032aa7ed2ffcd970ee",
                1677246742,
            ),
        ),
    )
    parameters = (
        ParameterSchema(
            "foreground_ratio", "float", 0.85, "Foreground ratio",
            "How much of the frame the cut-out subject fills", 0.5, 1.0,
        ),
        ParameterSchema(
            "mc_resolution", "int", 256, "Mesh resolution",
            "Marching-cubes grid cells per side", 16, 512,
        ),
        ParameterSchema(
            "chunk_size", "int", 8192, "Chunk size",
            "Field points per network call (0: all at once); lower saves VRAM", 0, 1 << 22,
        ),
        ParameterSchema(
            "density_threshold", "float", 25.0, "Density threshold",
            "Density at which the surface is drawn", 0.1, 1000.0,
        ),
        ParameterSchema(
            "background", "choice", "auto", "Background removal",
            "auto: alpha, else a segmentation network, else a colour key; none: use as is",
            choices=("auto", "alpha", "segmentation", "classical", "none"),
        ),
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.model: TripoSRNet | None = None
        self.dtype = torch.float32

    def check_inputs(self, request: GenerationRequest) -> None:
        super().check_inputs(request)
        resolve_parameters(self.parameters, request.parameters)

    def load(self, device: str, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"dtype {dtype!r} is not one of {', '.join(DTYPES)}",
                field="dtype",
            )
        self.dtype = DTYPES[dtype]
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            self.model = load_model(self.weights_dir, device=device)

    def unload(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        if self.model is None:
            raise ProtocolError(ErrorCode.MODEL_FAILED, "TripoSR is not loaded")
        self.check_inputs(request)
        params = resolve_parameters(self.parameters, request.parameters)
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            return self._generate(self.model, request, params, progress, cancel)

    def _generate(
        self,
        model: TripoSRNet,
        request: GenerationRequest,
        params: dict[str, Any],
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> RawAsset:
        cancel.raise_if_cancelled()
        progress("preprocess", 0, 1, "removing the background")
        image, cutout_method = inference.condition_image(
            request.images[0].pixels, params["foreground_ratio"], params["background"]
        )
        progress("preprocess", 1, 1, f"cut-out: {cutout_method}", preview=_preview(image))

        cancel.raise_if_cancelled()
        progress("encode", 0, 1, "image -> triplanes")
        planes = inference.encode(model, image, self.dtype)
        progress("encode", 1, 1, "triplanes ready")

        resolution, chunk = params["mc_resolution"], params["chunk_size"]
        every = max(1, resolution**3 // PROGRESS_UPDATES)
        reported = [0]

        def between_chunks(done: int, total: int) -> None:
            cancel.raise_if_cancelled()
            if done - reported[0] >= every or done == total:
                reported[0] = done
                progress("field", done, total, f"density at {done}/{total} grid points")

        density = inference.density_grid(model, planes, resolution, chunk, between_chunks)
        cancel.raise_if_cancelled()
        progress("surface", 0, 1, f"marching cubes at {resolution}^3")
        vertices, faces = inference.surface(
            density, params["density_threshold"], model.config.radius
        )
        color_field = inference.make_color_field(model, planes, chunk)
        vertex_colors = color_field(vertices)
        progress("surface", 1, 1, f"{len(faces)} triangles")
        return RawAsset(
            vertices=vertices,
            faces=faces,
            vertex_colors=vertex_colors,
            color_field=color_field,
            name="triposr",
        )


def _preview(image: np.ndarray) -> np.ndarray:
    step = max(1, image.shape[0] // PREVIEW_SIZE)
    return np.ascontiguousarray(image[::step, ::step])
