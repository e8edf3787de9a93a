"""The TRELLIS.2-4B card: image -> PBR-textured mesh (base colour, metallic, roughness, alpha).

Weights: ``microsoft/TRELLIS.2-4B`` (MIT) at a pinned revision - pipeline.json and the seven
networks a run reads (the encoders are left out) - plus two required components: TRELLIS v1's
structure decoder (``decoders``, from microsoft/TRELLIS-image-large, which pipeline.json names)
and the DINOv3 ViT-L/16 conditioner (``dinov3``, gated: Meta's licence must be accepted on the
hub; the missing-weights error says how). The cut-out is ours (the shared ``background`` path),
not upstream's RMBG-2.0 (CC BY-NC).

Task ``texture`` (upstream's texturing pipeline, texturing.py): the artist's mesh + one image ->
PBR fields on that mesh, its geometry and UVs kept; it needs the optional ``encoder``
component (the shape SC-VAE encoder, ``ckpts/shape_enc_next_dc_f16c32_fp16`` of the same repo),
and ``resolution`` picks the grid the mesh is voxelised at (512: the 512 texture flow; 1024 or
1536: the 1024 one).

Parameters: ``resolution`` 512 (one shape pass), 1024 (512 -> 1024 cascade, upstream's default)
or 1536 (cascade to 1536, lowered in steps of 128 while over ``max_num_tokens``); steps and
guidance per stage (0: pipeline.json's 12 steps and 7.5 / 7.5 / 1.0). Output: the dual-grid
mesh in the backend's frame with three fields the bake evaluates at texel points: base colour,
(roughness, metallic) -> the ORM map, and alpha where the model made anything see-through.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

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
from backend.models.trellis.adapter import IMAGE_REPO, IMAGE_REVISION, SS_DECODER_STEM
from backend.models.trellis2.config import SHAPE_ENCODER_STEM
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

REPO = "microsoft/TRELLIS.2-4B"
REVISION = "af44b45f2e35a493886929c6d786e563ec68364d"  # hub sha of 2025-12-27 (research 6)
DINOV3_REVISION = "ea8dc2863c51be0a264bab82070e3e8836b02d51"  # quoted by projects pinning it
SS_DECODER_REFERENCE = f"{IMAGE_REPO}/{SS_DECODER_STEM}"
STEMS = {
    "sparse_structure_flow_model": "ckpts/ss_flow_img_dit_1_3B_64_bf16",
    "shape_slat_flow_model_512": "ckpts/slat_flow_img2shape_dit_1_3B_512_bf16",
    "shape_slat_flow_model_1024": "ckpts/slat_flow_img2shape_dit_1_3B_1024_bf16",
    "tex_slat_flow_model_512": "ckpts/slat_flow_imgshape2tex_dit_1_3B_512_bf16",
    "tex_slat_flow_model_1024": "ckpts/slat_flow_imgshape2tex_dit_1_3B_1024_bf16",
    "shape_slat_decoder": "ckpts/shape_dec_next_dc_f16c32_fp16",
    "tex_slat_decoder": "ckpts/tex_dec_next_dc_f16c32_fp16",
}
# Approximate sizes (1.3 B-parameter flows with a bf16 torso; ~0.2 B fp16 decoders), for the
# disk check only.
_SIZES = {"flow": 2_700_000_000, "decoder": 500_000_000}
RESOLUTIONS = {"512": "512", "1024": "1024_cascade", "1536": "1536_cascade"}
# One order for both tasks: texture runs voxelize, encode, condition, texture, decode.
STAGE_WEIGHTS = {
    "voxelize": 0.02, "encode": 0.02, "condition": 0.03, "structure": 0.2, "shape": 0.3,
    "texture": 0.3, "decode": 0.12, "mesh": 0.05,
}  # fmt: skip
OUT_OF_MEMORY_HINT = "Lower the resolution (512) or max_num_tokens, or close other GPU programs."


def _files() -> tuple[WeightFile, ...]:
    files = [WeightFile("pipeline.json", size=3_000)]
    for stem in STEMS.values():
        size = _SIZES["decoder" if "_dec_" in stem else "flow"]
        files += [
            WeightFile(f"{stem}.json", size=1_000),
            WeightFile(f"{stem}.safetensors", size=size),
        ]
    return tuple(files)


DINOV3 = WeightsSource(
    repo_id="facebook/dinov3-vitl16-pretrain-lvd1689m",
    revision=DINOV3_REVISION,
    files=(
        WeightFile("config.json", size=1_000),
        WeightFile("model.safetensors", size=1_213_000_000),
    ),
    gated=True,
)
# The shape encoder only texturing reads: optional, from the same repo and revision.
ENCODER = WeightsSource(
    REPO,
    REVISION,
    (WeightFile(f"{SHAPE_ENCODER_STEM}.json", size=1_000),
     WeightFile(f"{SHAPE_ENCODER_STEM}.safetensors", size=_SIZES["decoder"])),
)  # fmt: skip
DECODERS = WeightsSource(
    IMAGE_REPO,
    IMAGE_REVISION,
    (WeightFile(f"{SS_DECODER_STEM}.json", size=1_000),
     WeightFile(f"{SS_DECODER_STEM}.safetensors", size=147_600_000)),
)  # fmt: skip


def _stage_parameters() -> tuple[ParameterSchema, ...]:
    out = []
    for stage, label in (("structure", "Structure"), ("shape", "Shape"), ("texture", "Texture")):
        out += [
            ParameterSchema(f"{stage}_steps", "int", 0, f"{label} steps",
                            f"Sampling steps of the {stage} stage (0: the release's 12)", 0, 50),
            ParameterSchema(f"{stage}_guidance", "float", 0.0, f"{label} guidance",
                            f"Guidance of the {stage} stage (0: the release's)", 0.0, 10.0),
        ]  # fmt: skip
    return tuple(out)


class Trellis2Adapter(ModelAdapter):
    id = "trellis2-4b"
    name = "TRELLIS.2 4B"
    description = (
        "Image -> PBR-textured mesh (base colour, metallic, roughness, alpha) through native "
        "sparse voxel latents (Microsoft, 4B; DINOv3 conditioning, O-Voxel dual grid)."
    )
    license = "MIT"
    license_url = "https://huggingface.co/microsoft/TRELLIS.2-4B"
    tasks = ("image", "texture")
    vram_mb = 24_000  # upstream's stated minimum (the 1024 cascade)
    cuda_dtype = "bfloat16"  # the flows' stored torso dtype
    weights = WeightsSource(REPO, REVISION, _files())
    components = {"decoders": DECODERS, "dinov3": DINOV3, "encoder": ENCODER}
    required_components = ("decoders", "dinov3")
    stage_weights = STAGE_WEIGHTS
    out_of_memory_hint = OUT_OF_MEMORY_HINT
    parameters = (
        ParameterSchema("resolution", "choice", "1024", "Resolution",
                        "Mesh grid: 512, 1024 (512 -> 1024 cascade) or 1536 (cascade)",
                        choices=tuple(RESOLUTIONS)),
        *_stage_parameters(),
        ParameterSchema("max_num_tokens", "int", 49152, "Token budget",
                        "Most voxels of the high-resolution pass (the cascade lowers the "
                        "resolution in steps of 128 above it)", 4096, 262144),
        BACKGROUND_PARAMETER,
    )  # fmt: skip

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: Any = None

    def _load(self, device: str, dtype: str) -> None:
        from backend.models.common.torch_dtypes import torch_dtype
        from backend.models.trellis.compiled import should_compile
        from backend.models.trellis2.pipeline import Trellis2Pipeline

        self.pipeline = Trellis2Pipeline.from_folder(
            self.weights_dir,
            dinov3_folder=self.component_dirs.get("dinov3"),
            shared_folders=[self.component_dirs["decoders"]],
            device=device,
            dtype=torch_dtype(dtype),
            encoder_folder=self.component_dirs.get("encoder"),
        )
        if should_compile(device):  # the first job compiles (see trellis/compiled.py)
            self.pipeline.compile_blocks()

    def _release(self) -> None:
        self.pipeline = None

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.trellis2.pipeline import Trellis2Request

        params = request.parameters
        if request.task == "texture":
            return self._texture(request, progress, cancel)

        def report(stage: str, step: int, total: int) -> None:
            cancel.raise_if_cancelled()
            progress(stage, step, total)

        run = Trellis2Request(
            images=(request.images[0].pixels,),
            seed=request.seed,
            pipeline_type=RESOLUTIONS[params["resolution"]],
            structure=self._settings("sparse_structure_sampler", "structure", params),
            shape=self._settings("shape_slat_sampler", "shape", params),
            texture=self._settings("tex_slat_sampler", "texture", params),
            max_num_tokens=params["max_num_tokens"],
        )
        output = self.pipeline.run(run, report)
        raw = output_to_raw_asset(output, self.id)
        raw.warnings += output.warnings
        return raw

    def _texture(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        """Task texture: PBR fields on the given mesh; its vertices, faces and UVs go on."""
        from backend.models.trellis2.texturing import TextureRequest, texture_fields, texture_mesh

        mesh = request.mesh
        if mesh is None:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD, "task 'texture' needs a mesh", field="mesh"
            )

        def report(stage: str, step: int, total: int) -> None:
            cancel.raise_if_cancelled()
            progress(stage, step, total)

        run = TextureRequest(
            vertices=mesh.vertices, faces=mesh.faces, image=request.images[0].pixels,
            seed=request.seed, resolution=int(request.parameters["resolution"]),
            texture=self._settings("tex_slat_sampler", "texture", request.parameters),
        )  # fmt: skip
        output = texture_mesh(self.pipeline, run, report)
        colour, material, alpha = texture_fields(output)
        return RawAsset(
            vertices=mesh.vertices, faces=mesh.faces, uvs=mesh.uvs, color_field=colour,
            material_field=material,
            alpha_field=alpha if output.pbr.has_transparency() else None,
            name=mesh.name or self.id, warnings=list(mesh.warnings),
        )  # fmt: skip

    def _settings(self, role: str, stage: str, params: Any) -> Any:
        released = self.pipeline.config.samplers[role].settings
        changes = {}
        if params[f"{stage}_steps"]:
            changes["steps"] = params[f"{stage}_steps"]
        if params[f"{stage}_guidance"]:
            changes["guidance_strength"] = params[f"{stage}_guidance"]
        return dataclasses.replace(released, **changes)

    def _check(self, request: GenerationRequest) -> None:
        if request.task == "texture" and "encoder" not in self.component_dirs:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                "trellis2-4b texturing needs its shape encoder, which is not on this machine",
                hint="Run `dreamcad-backend download trellis2-4b --with encoder`.",
            )
        if request.task == "texture" and not request.images:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD,
                f"{self.id} textures from an image: send one, or a prompt through image-bridge",
                field="images",
                hint="model image-bridge with parameters.image_model set to this model turns "
                "a prompt into the image first",
            )
        if len(request.images) != 1:
            raise ProtocolError(
                ErrorCode.TOO_MANY_FRAMES, "trellis2-4b takes one image", field="images"
            )


def output_to_raw_asset(output: Any, name: str) -> RawAsset:
    """A Trellis2Output -> RawAsset in the backend's frame with the PBR fields."""
    from backend.models.trellis.mesh_extraction import to_backend_frame
    from backend.models.trellis2.pbr_field import pbr_fields

    colour, material, alpha = pbr_fields(output.pbr)
    vertices = to_backend_frame(output.mesh.vertices.float()).cpu().numpy()
    return RawAsset(
        vertices=vertices,
        faces=output.mesh.faces.cpu().numpy(),
        color_field=colour,
        material_field=material,
        alpha_field=alpha if output.pbr.has_transparency() else None,
        name=name,
    )
