"""The ``sf3d`` card and hooks: one cut-out image -> a RawAsset with albedo and material fields.

The steps are pipeline.py's (framing, encode, field, surface). Upstream's own UV unwrap (box
projection) and rasterising texture bake are replaced by the geometry pipeline's: it unwraps the
decimated mesh and queries ``color_field`` (the delighted albedo) and ``material_field``
(roughness, metallic) at texel surface points, and bakes the normal map from the dense mesh.
Upstream's remesh options map onto the pipeline's decimation to ``target_faces``. On CUDA the
encoders and backbone run under autocast in the loaded half dtype; field queries and mesh
extraction stay float32 (as upstream). torch and the network are imported in the hooks.
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
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

if TYPE_CHECKING:
    from backend.models.sf3d.pipeline import SF3DPipeline

FIELD_UPDATES = 16  # field-query progress events per generation, however many chunks


class SF3DAdapter(ModelAdapter):
    id = "sf3d"
    name = "Stable Fast 3D"
    description = (
        "Single image -> UV-textured mesh with delighted albedo, roughness and metallic in about "
        "half a second on a GPU (Stability AI; DINOv2 + two-stream transformer, DMTet)."
    )
    tasks = ("image",)
    license = "Stability AI Community License"
    license_url = "https://huggingface.co/stabilityai/stable-fast-3d/blob/main/LICENSE.md"
    vram_mb = 6000  # upstream README: about 6 GB for one image at the defaults
    max_images = 1
    cuda_dtype = "bfloat16"  # upstream runs the encoders under bf16 autocast
    # Gated repo: accept the licence on the hub and log in before downloading. No commit of it
    # could be confirmed from here, so the revision is the branch. The file names are
    # loading.CONFIG_FILE / WEIGHTS_FILE (spelled out: the card imports no torch).
    weights = WeightsSource(
        repo_id="stabilityai/stable-fast-3d",
        revision="main",
        files=(WeightFile("config.yaml"), WeightFile("model.safetensors")),
        gated=True,
    )
    parameters = (
        ParameterSchema(
            "foreground_ratio", "float", 0.85, "Foreground ratio",
            "How much of the frame the cut-out subject fills", 0.5, 1.0,
        ),
        ParameterSchema(
            "isosurface_resolution", "int", 0, "Mesh resolution",
            "Tet-grid resolution (0: the model's own, 160); grid cells per side = half of it",
            0, 320,
        ),
        ParameterSchema(
            "chunk_size", "int", 262_144, "Chunk size",
            "Field points per network call; lower saves VRAM", 1024, 1 << 22,
        ),
        BACKGROUND_PARAMETER,
    )  # fmt: skip
    # Shares of a run on a GPU (benchmarks/results/sf3d_h100_bfloat16.json, less the cut-out the
    # template makes before): the encoders, then the field on the tet grid.
    stage_weights = {"preprocess": 0.1, "encode": 0.5, "field": 0.3, "surface": 0.1}
    out_of_memory_hint = (
        "Lower chunk_size or isosurface_resolution, load in float16, or close other GPU programs."
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: SF3DPipeline | None = None

    def _check(self, request: GenerationRequest) -> None:
        resolution = request.parameters["isosurface_resolution"]
        if resolution and (resolution < 8 or resolution % 2):
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"isosurface_resolution must be 0 or an even number >= 8, got {resolution}",
                field="parameters.isosurface_resolution",
            )

    def _load(self, device: str, dtype: str) -> None:
        from backend.models.common.torch_dtypes import torch_dtype
        from backend.models.sf3d.loading import load_network
        from backend.models.sf3d.pipeline import SF3DPipeline

        model, _ = load_network(self.weights_dir, device=device)
        self.pipeline = SF3DPipeline(model, torch_dtype(dtype), self.weights_dir)

    def _release(self) -> None:
        self.pipeline = None  # with it the network, its tet grids and its captured CUDA graphs

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.sf3d.pipeline import SF3DSettings

        assert self.pipeline is not None  # the template calls us only when loaded
        params = request.parameters
        settings = SF3DSettings(
            foreground_ratio=params["foreground_ratio"],
            frame_subject=params["background"] != "none",
            isosurface_resolution=params["isosurface_resolution"],
            chunk_size=params["chunk_size"],
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
            color_field=out.fields.albedo,
            material_field=out.fields.material,
            roughness=out.roughness,
            metallic=out.metallic,
            name="sf3d",
            warnings=[] if len(out.faces) else ["SF3D found no surface in this image"],
        )
