"""The ``triposr`` card and hooks: one cut-out image -> a RawAsset with a colour field.

Parameters are upstream CLI's options (foreground ratio 0.85, marching-cubes resolution 256)
but a larger field chunk (262144 points, cut to fit the GPU's free memory: it does not change
the output, see chunking.py; upstream's is 8192), plus the density threshold of upstream's
``extract_mesh`` and the shared ``background`` cut-out the template applies. Weights come from
a local folder laid out like ``stabilityai/TripoSR``; nothing is fetched. On CUDA the image
encoder and transformer run under autocast in the loaded half dtype, the field query stays
float32 (its exp density is threshold-sensitive). torch and the network are imported in the
hooks, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

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
from shared_protocol.messages import ParameterSchema

if TYPE_CHECKING:
    from backend.models.triposr.pipeline import TripoSRPipeline

FIELD_UPDATES = 32  # field-query progress events per generation, however many chunks


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
            "chunk_size", "int", 1 << 18, "Chunk size",
            "Field points per network call (0: as many as fit); lower saves VRAM, the mesh is "
            "the same", 0, 1 << 22,
        ),
        ParameterSchema(
            "density_threshold", "float", 25.0, "Density threshold",
            "Density at which the surface is drawn", 0.1, 1000.0,
        ),
        BACKGROUND_PARAMETER,
    )  # fmt: skip
    # Shares of a default run on a GPU (benchmarks/results/triposr_h200.json, the product
    # default: fp32, 262k-point chunks): encode and field about equal, surface + colour a tenth.
    stage_weights = {"preprocess": 0.05, "encode": 0.43, "field": 0.38, "surface": 0.14}
    out_of_memory_hint = (
        "Lower chunk_size or mc_resolution, load in float16, or close other GPU programs."
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: TripoSRPipeline | None = None

    def _load(self, device: str, dtype: str) -> None:
        from backend.models.common.torch_dtypes import torch_dtype
        from backend.models.triposr.loading import load_model
        from backend.models.triposr.pipeline import TripoSRPipeline

        # The weights stay float32 (upstream's numerics); half dtypes apply through autocast.
        self.pipeline = TripoSRPipeline(load_model(self.weights_dir, device), torch_dtype(dtype))

    def _release(self) -> None:
        self.pipeline = None

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.triposr.pipeline import TripoSRSettings

        assert self.pipeline is not None  # the template calls us only when loaded
        params = request.parameters
        settings = TripoSRSettings(
            foreground_ratio=params["foreground_ratio"],
            frame_subject=params["background"] != "none",
            mc_resolution=params["mc_resolution"],
            chunk_size=params["chunk_size"],
            density_threshold=params["density_threshold"],
        )
        reported = [0]

        def on_event(stage: str, step: int, total: int, message: str = "",
                     preview: np.ndarray | None = None) -> None:
            # Cancel is honoured at every event (every field chunk); field progress is thinned.
            cancel.raise_if_cancelled()
            if stage == "field":
                if step - reported[0] < max(1, total // FIELD_UPDATES) and step != total:
                    return
                reported[0] = step
            progress(stage, step, total, message, preview=preview)
            cancel.raise_if_cancelled()

        out = self.pipeline(request.images[0].pixels, settings, on_event)
        return RawAsset(
            vertices=out.vertices,
            faces=out.faces,
            vertex_colors=out.vertex_colors,
            color_field=out.color_field,
            name="triposr",
        )
