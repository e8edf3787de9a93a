"""The ``sf3d`` model adapter: one image -> a RawAsset with albedo and material fields.

Steps (each reported, each preceded by a cancel check): cut-out and framing, image + camera ->
triplanes, per-image roughness/metallic, density and vertex offsets on the tet grid (chunked),
marching tetrahedra. Upstream's own UV unwrap (box projection) and rasterising texture bake are
replaced by the geometry pipeline's: it unwraps the decimated mesh and queries ``color_field``
(the delighted albedo) and ``material_field`` (roughness, metallic) at texel surface points,
and bakes the normal map from the dense mesh. Upstream's remesh options map onto the pipeline's
decimation to ``target_faces``. On CUDA the encoders and backbone run under autocast in the
requested half dtype; field queries and mesh extraction stay float32 (as upstream).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

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
from backend.models.common.cuda_graph import GraphedForward
from backend.models.common.device_errors import typed_device_errors
from backend.models.sf3d.config import SF3DConfig
from backend.models.sf3d.isosurface import MarchingTetrahedra, TetGrid
from backend.models.sf3d.loading import CONFIG_FILE, WEIGHTS_FILE, load_network
from backend.models.sf3d.network import SF3DNetwork, default_camera
from backend.models.sf3d.preprocess import condition_image
from backend.models.sf3d.reconstruct import FieldSampler, extract_mesh, model_to_backend
from backend.models.common.torch_dtypes import DTYPES
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

OUT_OF_MEMORY_HINT = (
    "Lower chunk_size or isosurface_resolution, load in float16, or close other GPU programs."
)
TETS_DIR_ENV = "DREAMCAD_SF3D_TETS_DIR"  # a folder holding upstream's {resolution}_tets.npz
PROGRESS_UPDATES = 16  # field-query progress events per generation, however many chunks


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
    # could be confirmed from here, so the revision is the branch (see the report).
    weights = WeightsSource(
        repo_id="stabilityai/stable-fast-3d",
        revision="main",
        files=(WeightFile(CONFIG_FILE), WeightFile(WEIGHTS_FILE)),
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
        ParameterSchema(
            "background", "choice", "auto", "Background removal",
            "auto: alpha, else a segmentation network, else a colour key; none: use as is",
            choices=("auto", "alpha", "segmentation", "classical", "none"),
        ),
    )

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.model: SF3DNetwork | None = None
        self.config: SF3DConfig | None = None
        self.dtype = torch.float32
        self._extractors: dict[int, MarchingTetrahedra] = {}
        self._encode: GraphedForward | None = None

    def check_inputs(self, request: GenerationRequest) -> None:
        super().check_inputs(request)
        params = resolve_parameters(self.parameters, request.parameters)
        resolution = params["isosurface_resolution"]
        if resolution and (resolution < 8 or resolution % 2):
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"isosurface_resolution must be 0 or an even number >= 8, got {resolution}",
                field="parameters.isosurface_resolution",
            )

    def load(self, device: str, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER, f"dtype {dtype!r} is not one of {', '.join(DTYPES)}",
                field="dtype",
            )
        self.dtype = DTYPES[dtype]
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            self.model, self.config = load_network(self.weights_dir, device=device)
        # On CUDA the encoder replays as one captured graph (same kernels, no launch gaps).
        half = self.dtype if self.dtype != torch.float32 else None
        self._encode = GraphedForward(self.model.scene_codes, autocast_dtype=half)

    def unload(self) -> None:
        self.model, self._extractors, self._encode = None, {}, None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        if self.model is None:
            raise ProtocolError(ErrorCode.MODEL_FAILED, "SF3D is not loaded")
        self.check_inputs(request)
        params = resolve_parameters(self.parameters, request.parameters)
        with typed_device_errors(self.id, OUT_OF_MEMORY_HINT):
            return self._generate(self.model, request, params, progress, cancel)

    def extractor(self, resolution: int) -> MarchingTetrahedra:
        """The (cached) tet grid for ``resolution`` on the model's device: upstream's grid file
        when one is found (:meth:`tet_grid_file`), else our regular grid of the same size."""
        if resolution not in self._extractors:
            device = self.model.bbox.device if self.model is not None else "cpu"
            path = self.tet_grid_file(resolution)
            grid = TetGrid.from_npz(path) if path else TetGrid.regular(resolution // 2)
            self._extractors[resolution] = MarchingTetrahedra(grid, resolution, device)
        return self._extractors[resolution]

    def tet_grid_file(self, resolution: int) -> Path | None:
        """Upstream's ``{resolution}_tets.npz`` (it ships in the stable-fast-3d GitHub repo, not
        on the hub): ``DREAMCAD_SF3D_TETS_DIR``, else the weights folder or its ``load/tets``."""
        name = f"{resolution}_tets.npz"
        folders = [Path(env)] if (env := os.environ.get(TETS_DIR_ENV)) else []
        if self.weights_dir is not None:
            folders += [self.weights_dir, self.weights_dir / "load" / "tets"]
        return next((folder / name for folder in folders if (folder / name).is_file()), None)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if device.type == "cuda" and self.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _generate(
        self, model: SF3DNetwork, request: GenerationRequest, params: dict[str, Any],
        progress: ProgressCallback, cancel: CancelToken,
    ) -> RawAsset:
        config = model.config
        device = model.bbox.device
        cancel.raise_if_cancelled()
        progress("preprocess", 0, 1, "removing the background")
        cond = condition_image(
            request.images[0].pixels, config, params["foreground_ratio"], params["background"]
        )
        progress("preprocess", 1, 1, f"cut-out: {cond.cutout_method}", preview=cond.framed)
        cancel.raise_if_cancelled()
        progress("encode", 0, 2, "image -> triplanes")
        c2w, intrinsic = default_camera(config)
        rgb, mask = cond.rgb.to(device), cond.mask.to(device)
        with self._autocast(device):
            encode = self._encode or model.scene_codes
            planes, _ = encode(
                rgb, c2w.to(device).view(1, 1, 4, 4), intrinsic.to(device).view(1, 1, 3, 3)
            )
            cancel.raise_if_cancelled()
            progress("encode", 1, 2, "estimating roughness and metallic")
            materials = model.estimate_materials(rgb, mask)
        planes = planes[0].float()
        roughness = float(materials["roughness"].float().reshape(-1)[0])
        metallic = float(materials["metallic"].float().reshape(-1)[0])
        progress("encode", 2, 2, f"roughness {roughness:.2f}, metallic {metallic:.2f}")

        resolution = params["isosurface_resolution"] or config.isosurface_resolution
        extractor = self.extractor(resolution)
        every = max(1, extractor.vertices.shape[0] // PROGRESS_UPDATES)
        reported = [0]

        def between_chunks(done: int, total: int) -> None:
            cancel.raise_if_cancelled()
            if done - reported[0] >= every or done == total:
                reported[0] = done
                progress("field", done, total, f"density at {done}/{total} grid points")

        vertices, faces = extract_mesh(model, planes, extractor, params["chunk_size"],
                                       between_chunks)
        cancel.raise_if_cancelled()
        progress("surface", 1, 1, f"{len(faces)} triangles")
        fields = FieldSampler(model, planes, roughness, metallic, params["chunk_size"])
        warnings = [] if len(faces) else ["SF3D found no surface in this image"]
        return RawAsset(
            vertices=model_to_backend(vertices.cpu().numpy()),
            faces=faces.cpu().numpy(),
            color_field=fields.albedo,
            material_field=fields.material,
            roughness=roughness,
            metallic=metallic,
            name="sf3d",
            warnings=warnings,
        )
