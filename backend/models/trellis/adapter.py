"""The TRELLIS cards: image (and multi-view) to 3D, and the three text-to-3D sizes.

``trellis-image-large`` conditions on DINOv2 ViT-L/14-reg (the ``dinov2`` component) and takes
one image, or 2-8 views of one object (upstream's stochastic or multidiffusion conditioning).
``trellis-text-{base,large,xlarge}`` condition on CLIP ViT-L/14's text tower (the ``clip``
component) and share the image model's decoders (the ``decoders`` component: only the
structure and mesh decoders' files of the image repo). Each model's weights list only the files
its run reads. Quality presets set the two stages' steps and guidance (draft: the official demo's
12 steps, guidance 7.5 / 3; standard: pipeline.json's; high: 50 steps); a non-zero
``*_steps`` / ``*_guidance`` overrides them. Heavy imports happen in the hooks only.

Output: the FlexiCubes mesh in the backend's frame with the decoder's vertex colours, and the
decoded colour as a field the geometry pipeline's bake evaluates at every texel (see
colour_field.py). With ``gaussians`` on (off by default: an extra 171 MB decoder from the image
repo, the optional ``gaussians`` component, and a ~40 MB file per full-size run), the structured
latent is also decoded to 3D Gaussians, handed over as a 3DGS ``.ply`` in
``RawAsset.extra_files["gaussians.ply"]``.
"""

from __future__ import annotations

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
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

IMAGE_REPO = "microsoft/TRELLIS-image-large"
# A snapshot commit of the image repo quoted by many projects that pin it (not checked against
# the hub from here; its pipeline.json must have cfg_interval [0.5, 1.0], see research 1.0).
IMAGE_REVISION = "25e0d31ffbebe4b5a97464dd851910efc3002d96"
SS_DECODER_STEM = "ckpts/ss_dec_conv3d_16l8_fp16"
MESH_DECODER_STEM = "ckpts/slat_dec_mesh_swin8_B_64l8m256c_fp16"
GAUSSIAN_DECODER_STEM = "ckpts/slat_dec_gs_swin8_B_64l8gs32_fp16"
RF_DECODER_STEM = "ckpts/slat_dec_rf_swin8_B_64l8r16_fp16"
COLOUR_SOURCES = ("mesh", "radiance_field")
GAUSSIAN_PLY = "gaussians.ply"  # the name of the splat file among the RawAsset's extra files
QUALITIES = ("draft", "standard", "high")
DRAFT = ((12, 7.5), (12, 3.0))  # the official Gradio demo's (steps, guidance) per stage
HIGH_STEPS = 50  # the demo's slider maximum
STAGE_WEIGHTS = {"condition": 0.03, "structure": 0.3, "latent": 0.47, "decode": 0.1, "mesh": 0.1}
OUT_OF_MEMORY_HINT = (
    "Close other GPU programs, or pick a smaller TRELLIS model (trellis-text-base)."
)


def _network_files(stem: str, sizes: tuple[int, int] = (0, 0)) -> tuple[WeightFile, ...]:
    return (
        WeightFile(f"{stem}.json", size=sizes[0]),
        WeightFile(f"{stem}.safetensors", size=sizes[1]),
    )


# Sizes: approximate (research 1.0's figures, which match the hub's); only the disk check
# reads them.
DECODER_FILES = (
    *_network_files(SS_DECODER_STEM, (1_000, 147_600_000)),
    *_network_files(MESH_DECODER_STEM, (1_000, 181_900_000)),
)
DINOV2 = WeightsSource(
    repo_id="facebook/dinov2-with-registers-large",
    revision="e4c89a4e05589de9b3e188688a303d0f3c04d0f3",
    files=(
        WeightFile("config.json", size=1_000),
        WeightFile("model.safetensors", size=1_217_000_000),
    ),
)
GAUSSIAN_FILES = _network_files(GAUSSIAN_DECODER_STEM, (1_000, 171_400_000))
# Optional for every model: the image repo's Gaussian decoder (only the gaussians option reads it).
GAUSSIANS = WeightsSource(IMAGE_REPO, IMAGE_REVISION, GAUSSIAN_FILES)
RF_FILES = _network_files(RF_DECODER_STEM, (1_000, 171_400_000))
# Optional too: the radiance-field decoder, read only with colour_source=radiance_field.
RADIANCE_FIELD = WeightsSource(IMAGE_REPO, IMAGE_REVISION, RF_FILES)
CLIP = WeightsSource(
    repo_id="openai/clip-vit-large-patch14",
    revision="32bd64288804d66eefd0ccbe215aa642df71cc41",
    files=tuple(
        WeightFile(name, size=size)
        for name, size in (
            ("config.json", 4_600),
            ("model.safetensors", 1_710_000_000),
            ("vocab.json", 962_000),
            ("merges.txt", 525_000),
            ("tokenizer_config.json", 1_000),
            ("special_tokens_map.json", 1_000),
        )
    ),
)


def _sampling_parameters() -> tuple[ParameterSchema, ...]:
    return (
        ParameterSchema("quality", "choice", "standard", "Quality",
                        "draft: 12 steps per stage; standard: the release's 25; high: 50",
                        choices=QUALITIES),
        ParameterSchema("structure_steps", "int", 0, "Structure steps",
                        "Sampling steps of the sparse-structure stage (0: the quality's)", 0, 50),
        ParameterSchema("structure_guidance", "float", 0.0, "Structure guidance",
                        "Classifier-free guidance of the structure stage (0: the quality's)",
                        0.0, 10.0),
        ParameterSchema("latent_steps", "int", 0, "Latent steps",
                        "Sampling steps of the structured-latent stage (0: the quality's)", 0, 50),
        ParameterSchema("latent_guidance", "float", 0.0, "Latent guidance",
                        "Classifier-free guidance of the latent stage (0: the quality's)",
                        0.0, 10.0),
        ParameterSchema("cfg_interval_start", "float", 0.5, "Guidance from t",
                        "Guidance applies while the flow time t is in [start, end]", 0.0, 1.0),
        ParameterSchema("cfg_interval_end", "float", 1.0, "Guidance until t",
                        "Upper end of the guidance interval (t runs from 1 down to 0)", 0.0, 1.0),
        ParameterSchema("rescale_t", "float", 3.0, "Time rescale",
                        "Spends more steps near t = 1: t' = r t / (1 + (r - 1) t)", 0.25, 10.0),
        ParameterSchema("colour_source", "choice", "mesh", "Colour source",
                        "What the texture is baked from: the mesh decoder's colour, or the "
                        "radiance-field decoder's (needs the 'radiance_field' download)",
                        choices=COLOUR_SOURCES),
        ParameterSchema("gaussians", "bool", False, "Gaussian splats",
                        "Also decode 3D Gaussians and return them as a .ply (needs the "
                        "'gaussians' download)"),
    )  # fmt: skip


MULTI_IMAGE_PARAMETER = ParameterSchema(
    "multi_image_mode",
    "choice",
    "stochastic",
    "Multi-view mode",
    "stochastic: each step sees one view in turn; multidiffusion: every step averages all views",
    choices=("stochastic", "multidiffusion"),
)


def stage_settings(parameters: Any, defaults: tuple[Any, Any]) -> tuple[Any, Any]:
    """(structure, latent) SamplerSettings from resolved parameters and pipeline.json's defaults."""
    from backend.models.trellis.sampler import SamplerSettings

    quality = parameters["quality"]
    interval = (parameters["cfg_interval_start"], parameters["cfg_interval_end"])
    settings = []
    for index, (prefix, default) in enumerate(zip(("structure", "latent"), defaults, strict=True)):
        steps, guidance = default.steps, default.cfg_strength
        if quality == "draft":
            steps, guidance = DRAFT[index]
        elif quality == "high":
            steps = HIGH_STEPS
        steps = parameters[f"{prefix}_steps"] or steps
        guidance = parameters[f"{prefix}_guidance"] or guidance
        settings.append(SamplerSettings(steps, guidance, interval, parameters["rescale_t"]))
    return settings[0], settings[1]


class _TrellisAdapter(ModelAdapter):
    """The hooks every TRELLIS model shares; the cards below set what differs."""

    license = "MIT"
    cuda_dtype = "float16"  # upstream stores and runs the networks' torsos in fp16
    stage_weights = STAGE_WEIGHTS
    out_of_memory_hint = OUT_OF_MEMORY_HINT
    condition_component = ""  # the component holding the conditioner's files

    def __init__(self, weights_dir: Path | None = None) -> None:
        super().__init__(weights_dir)
        self.pipeline: Any = None

    def _check(self, request: GenerationRequest) -> None:
        params = request.parameters
        if params["cfg_interval_start"] > params["cfg_interval_end"]:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                "cfg_interval_start must not exceed cfg_interval_end",
                field="parameters.cfg_interval_start",
            )
        if params["colour_source"] == "radiance_field" and self._rf_folder() is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{self.id}: colour_source=radiance_field needs the radiance-field decoder "
                f"({RF_DECODER_STEM}.*)",
                field="parameters.colour_source",
                hint=f"Run `dreamcad-backend download {self.id} --with radiance_field`.",
            )
        if params["gaussians"] and self._gaussian_folder() is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{self.id}: gaussians need the Gaussian decoder ({GAUSSIAN_DECODER_STEM}.*)",
                field="parameters.gaussians",
                hint=f"Run `dreamcad-backend download {self.id} --with gaussians`.",
            )

    def _gaussian_folder(self) -> Path | None:
        """Where the Gaussian decoder's files are: the model's folder (a full copy of the image
        repo), the ``gaussians`` component, or the shared ``decoders`` folder; None: nowhere."""
        return self._optional_folder("gaussians", GAUSSIAN_FILES)

    def _rf_folder(self) -> Path | None:
        """Where the radiance-field decoder's files are (as ``_gaussian_folder``)."""
        return self._optional_folder("radiance_field", RF_FILES)

    def _optional_folder(self, component: str, files: tuple[WeightFile, ...]) -> Path | None:
        candidates = (self.weights_dir, *(self.component_dirs.get(n) for n in (component,
                                                                             "decoders")))
        for folder in candidates:
            if folder is not None and all((folder / f.path).is_file() for f in files):
                return folder
        return None

    def _component(self, name: str) -> Any:
        folder = self.component_dirs.get(name)
        if folder is None:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{self.id} needs its {name!r} files ({self.components[name].repo_id})",
                hint=f"Run `dreamcad-backend download {self.id} --with {name}`.",
            )
        return folder

    def _load(self, device: str, dtype: str) -> None:
        from backend.models.common.torch_dtypes import torch_dtype
        from backend.models.trellis.compiled import should_compile
        from backend.models.trellis.pipeline import TrellisPipeline

        shared = [self._component("decoders")] if "decoders" in self.components else []
        for optional in ("gaussians", "radiance_field"):  # read only by their options
            if optional in self.component_dirs:
                shared.append(self.component_dirs[optional])
        self.pipeline = TrellisPipeline.from_folder(
            self.weights_dir,
            conditioner_folder=self._component(self.condition_component),
            shared_folders=shared,
            device=device,
            dtype=torch_dtype(dtype),
        )
        if should_compile(device):  # the first job compiles (see trellis/compiled.py)
            self.pipeline.compile_blocks()

    def _release(self) -> None:
        self.pipeline = None

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from backend.models.trellis.pipeline import TrellisRequest

        params = request.parameters
        structure, latent = stage_settings(params, self.pipeline.default_settings())

        def report(stage: str, step: int, total: int) -> None:
            cancel.raise_if_cancelled()
            progress(stage, step, total)

        multi_image = params["multi_image_mode"] if request.task == "multi_image" else "stochastic"
        run = TrellisRequest(
            images=tuple(image.pixels for image in request.images),
            prompt=request.prompt,
            seed=request.seed,
            structure=structure,
            latent=latent,
            multi_image=multi_image,
            gaussians=params["gaussians"],
            radiance_field=params["colour_source"] == "radiance_field",
        )
        output = self.pipeline.run(run, report)
        raw = mesh_to_raw_asset(output.meshes[0], output.colours[0], name=self.id)
        if output.radiance_fields:
            from backend.models.trellis.radiance_field import (
                StrivecColour,
                radiance_field_colour_field,
            )

            strivec = StrivecColour.from_parameters(output.radiance_fields[0])
            raw.color_field = radiance_field_colour_field(strivec)
        raw.warnings += run_warnings(run)
        if output.gaussians:
            from backend.models.trellis.config import GAUSSIAN_DECODER
            from backend.models.trellis.gaussian_ply import gaussians_ply, ply_frame_to
            from backend.models.trellis.mesh_extraction import TRELLIS_TO_BACKEND

            decoder = self.pipeline.networks[GAUSSIAN_DECODER]
            raw.extra_files[GAUSSIAN_PLY] = gaussians_ply(output.gaussians[0], decoder.rep_config)
            raw.extra_file_frames[GAUSSIAN_PLY] = ply_frame_to(TRELLIS_TO_BACKEND)
        return raw


def run_warnings(run: Any) -> list[str]:
    """What the user should know about a run's settings (a TrellisRequest)."""
    warnings = []
    views = len(run.images)
    if views > 1 and run.multi_image == "stochastic":
        for stage, settings in (("structure", run.structure), ("latent", run.latent)):
            if settings.steps < views:
                warnings.append(
                    f"{views} views but {settings.steps} {stage} steps: in stochastic mode "
                    f"each step sees one view, so {views - settings.steps} views never "
                    "condition that stage (raise the steps or use multidiffusion)"
                )
    return warnings


def mesh_to_raw_asset(mesh: Any, colours: Any = None, name: str = "trellis") -> RawAsset:
    """FlexiCubes' mesh (TRELLIS frame: +Z up, [-0.5, 0.5]^3; colours (V, 6) = RGB | normal
    map) and the decoded colour grid -> a RawAsset in the backend's frame (+Y up, facing +Z),
    with vertex colours and, when ``colours`` (a GridColours) is given, the colour field the
    bake evaluates at texel points."""
    from backend.models.trellis.colour_field import colour_field
    from backend.models.trellis.mesh_extraction import to_backend_frame

    vertices = to_backend_frame(mesh.vertices.detach().float()).cpu().numpy()
    rgb = mesh.colours[:, :3].detach().float().clamp(0.0, 1.0).cpu().numpy()
    return RawAsset(
        vertices=vertices,
        faces=mesh.faces.detach().cpu().numpy(),
        vertex_colors=rgb,
        color_field=None if colours is None else colour_field(colours),
        name=name,
    )


class TrellisImageAdapter(_TrellisAdapter):
    id = "trellis-image-large"
    name = "TRELLIS image large"
    description = (
        "Image or 2-8 views -> textured mesh through structured 3D latents (Microsoft, 1.2B; "
        "DINOv2 conditioning, two rectified flows, FlexiCubes)."
    )
    license_url = "https://huggingface.co/microsoft/TRELLIS-image-large"
    tasks = ("image", "multi_image")
    max_images = 8
    vram_mb = 12_000  # the target at the defaults (upstream asks for 16 GB)
    weights = WeightsSource(
        repo_id=IMAGE_REPO,
        revision=IMAGE_REVISION,
        files=(
            WeightFile("pipeline.json", size=2_000),
            *_network_files("ckpts/ss_flow_img_dit_L_16l8_fp16", (1_000, 1_130_700_000)),
            *_network_files("ckpts/slat_flow_img_dit_L_64l8p2_fp16", (1_000, 1_203_700_000)),
            *DECODER_FILES,
        ),
    )
    components = {"dinov2": DINOV2, "gaussians": GAUSSIANS, "radiance_field": RADIANCE_FIELD}
    required_components = ("dinov2",)
    condition_component = "dinov2"
    parameters = (*_sampling_parameters(), MULTI_IMAGE_PARAMETER, BACKGROUND_PARAMETER)

    def _check(self, request: GenerationRequest) -> None:
        if request.task == "image" and len(request.images) != 1:
            raise ProtocolError(
                ErrorCode.TOO_MANY_FRAMES,
                f"task 'image' takes one image, got {len(request.images)}; send 2-8 views as "
                "task 'multi_image'",
                field="images",
            )
        if request.task == "multi_image" and len(request.images) < 2:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD,
                "task 'multi_image' takes 2-8 views of one object; send one image as task 'image'",
                field="images",
            )
        super()._check(request)  # after the images: the shape of the request comes first


def _text_weights(repo: str, size: str, flow_bytes: tuple[int, int]) -> WeightsSource:
    return WeightsSource(
        repo_id=repo,
        revision="main",  # no commit of the text repos could be confirmed from here
        files=(
            WeightFile("pipeline.json", size=2_000),
            *_network_files(f"ckpts/ss_flow_txt_dit_{size}_16l8_fp16", (1_000, flow_bytes[0])),
            *_network_files(f"ckpts/slat_flow_txt_dit_{size}_64l8p2_fp16", (1_000, flow_bytes[1])),
        ),
    )


class _TrellisTextAdapter(_TrellisAdapter):
    tasks = ("text",)
    components = {
        "decoders": WeightsSource(IMAGE_REPO, IMAGE_REVISION, DECODER_FILES),
        "clip": CLIP,
        "gaussians": GAUSSIANS,
        "radiance_field": RADIANCE_FIELD,
    }
    required_components = ("decoders", "clip")
    condition_component = "clip"
    parameters = _sampling_parameters()


class TrellisTextBaseAdapter(_TrellisTextAdapter):
    id = "trellis-text-base"
    name = "TRELLIS text base"
    description = "Prompt -> textured mesh through structured 3D latents (Microsoft, 342M)."
    license_url = "https://huggingface.co/microsoft/TRELLIS-text-base"
    vram_mb = 8_000  # estimate: 0.7 GB of flows; the mesh decoder and FlexiCubes dominate
    weights = _text_weights("microsoft/TRELLIS-text-base", "B", (327_700_000, 372_400_000))


class TrellisTextLargeAdapter(_TrellisTextAdapter):
    id = "trellis-text-large"
    name = "TRELLIS text large"
    description = "Prompt -> textured mesh through structured 3D latents (Microsoft, 1.1B)."
    license_url = "https://huggingface.co/microsoft/TRELLIS-text-large"
    vram_mb = 12_000  # estimate, as the image model (same flow sizes)
    weights = _text_weights("microsoft/TRELLIS-text-large", "L", (1_110_000_000, 1_200_000_000))


class TrellisTextXLargeAdapter(_TrellisTextAdapter):
    id = "trellis-text-xlarge"
    name = "TRELLIS text xlarge"
    description = "Prompt -> textured mesh through structured 3D latents (Microsoft, 2.0B)."
    license_url = "https://huggingface.co/microsoft/TRELLIS-text-xlarge"
    vram_mb = 14_000  # estimate: 4.1 GB of flows on top of the image model's activations
    weights = _text_weights("microsoft/TRELLIS-text-xlarge", "XL", (1_976_000_000, 2_151_000_000))
