"""Text -> 3D paths with full-size random weights: time and peak VRAM per stage.

Paths: ``mvdream`` (prompt -> 4 views -> cut-outs -> reconstruction by hunyuan3d-2mv, or inflate
with ``--reconstructor inflate`` -> back-projected texture -> geometry pipeline), ``shap-e``
(prompt -> latent -> mesh at a grid -> pipeline) and ``bridge`` (an SD-Turbo-sized text-to-image
pipeline -> inflate -> pipeline). Weights are seeded random tensors in the official layouts,
loaded through our real loading code. Every geometry-pipeline run records the raw mesh size, the
pipeline's own per-stage timings and the time spent in the model's colour field.

Random Shap-E weights give a field that changes sign everywhere, so its marching cubes fills
the box (millions of faces at grid 128) and the pipeline's cost is that mesh's, not a real
model's; the ``shap-e`` path therefore also times the pipeline on a smooth surface of a
realistic size at the same grid, coloured by the same Shap-E colour field
(``geometry_pipeline(smooth surface)``). The hunyuan3d-2mv weights get the smooth-field
treatment of benchmarks/hunyuan3d.py for the same reason.
When the upstream ``mvdream`` package is importable, its DDIM sampler runs on the same
weights, conditioning and initial noise in the same process, and the final latents are
compared (targets, issue 7: text -> GLB < 30 s and <= 24 GB on an H100; MVDream sampling
>= 1.3x upstream's speed with the same output). Both samplers are warmed up, then timed
``--repeats`` times each, alternating which goes first (median, min, max); upstream gets its
best attention (``--upstream-attention auto``: xformers where it runs, else torch's SDPA behind
upstream's own xformers code path), and the JSON says which. ``--compare-only`` stops the
mvdream path after that comparison.

    .venv/backend/bin/python benchmarks/text_to_3d.py [--paths mvdream,shap-e,bridge]
        [--reconstructor hunyuan3d-2mv|inflate]
    .venv/backend/bin/python benchmarks/text_to_3d.py --tiny      # CPU smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.cancellation import CancelToken  # noqa: E402
from backend.geometry.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from backend.geometry.warmup import warm_up  # noqa: E402
from backend.models.base import GenerationRequest, ImagePixels  # noqa: E402
from backend.models.builtin.inflate import InflateAdapter  # noqa: E402
from backend.models.mvdream.adapter import VIEW_NAMES  # noqa: E402
from backend.models.mvdream.back_projection import painted_views  # noqa: E402
from backend.models.mvdream.camera import (  # noqa: E402
    DEFAULT_AZIMUTHS,
    camera_embedding_input,
)
from backend.models.mvdream.config import SD21_BASE_4VIEW, TINY  # noqa: E402
from backend.models.mvdream.cutout import cut_out_views  # noqa: E402
from backend.models.mvdream.loading import build_models  # noqa: E402
from backend.models.mvdream.pipeline import MVDreamOutput, MVDreamPipeline  # noqa: E402
from backend.models.mvdream.testing import schedule_buffers, seeded_tensor  # noqa: E402
from backend.models.testing.clip_tokenizer import write_clip_tokenizer  # noqa: E402
from benchmarks.common import spread, upstream_provenance  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402

DATA = REPO / "tests" / "data" / "mvdream"
PROMPT = "a wooden chair, 3d asset"


@contextlib.contextmanager
def stage(results: dict, name: str, device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    results[name] = {"seconds": round(time.perf_counter() - start, 4), "peak_vram_mb": peak}


def seeded_state(manifest: Path, config) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict with seeded weights, built in memory (no 5 GB file)."""
    buffers = schedule_buffers(config)
    state = {}
    for entry in json.loads(manifest.read_text()):
        shape = tuple(entry["shape"])
        values = buffers[entry["name"]] if entry["kind"] == "buffer" else seeded_tensor(
            entry["name"], shape)
        state[entry["name"]] = torch.from_numpy(np.array(values, dtype=np.float32))
    return state


def geometry(results: dict, asset, device: torch.device, label: str = "geometry_pipeline") -> None:
    """Run the pipeline on ``asset``; record its stage timings, input size and field time."""
    field_use = {"calls": 0, "points": 0, "field_seconds": 0.0}
    if asset.color_field is not None:
        field = asset.color_field

        def timed_field(points: np.ndarray) -> np.ndarray:
            started = time.perf_counter()
            colours = field(points)
            field_use["calls"] += 1
            field_use["points"] += len(points)
            elapsed = field_use["field_seconds"] + time.perf_counter() - started
            field_use["field_seconds"] = round(elapsed, 4)
            return colours

        asset = replace(asset, color_field=timed_field)
    with stage(results, label, device):
        out = run_pipeline(asset, PipelineOptions(target_faces=20_000, texture_size=1024))
    results[f"{label}.input"] = {"faces": len(asset.faces),
                                 "vertices": len(asset.vertices)}
    results[f"{label}.stages_s"] = out.timings_s
    results[f"{label}.color_field"] = field_use


def run_mvdream(args, device, dtype, results: dict) -> None:
    config = TINY if args.tiny else SD21_BASE_4VIEW
    manifest = DATA / ("tiny_manifest.json" if args.tiny else "full_manifest.json")
    state = seeded_state(manifest, config)
    with stage(results, "load", device):
        models = build_models(state, config, str(device), dtype)
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(Path(tmp))
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(tmp, pad_token="!")
    pipeline = MVDreamPipeline(models, tokenizer)
    size = args.image_size
    factor = config.latent_factor
    noise = torch.randn((4, 4, size // factor, size // factor),
                        generator=torch.Generator().manual_seed(0))
    pipeline(PROMPT, steps=2, image_size=size, latents=noise)  # warm-up (kernels, allocator)
    with stage(results, "text_encode", device):
        cond, uncond = pipeline.encode_prompt(PROMPT), pipeline.encode_prompt("")
    cameras = torch.from_numpy(camera_embedding_input(args.elevation)).to(device, dtype)

    def ours(steps: int) -> torch.Tensor:
        with torch.no_grad():
            return pipeline.sample(noise.to(device, dtype), cond, uncond, cameras,
                                   steps=steps, guidance_scale=7.5)

    upstream = None if args.no_upstream else upstream_sampler(args, config, state, pipeline,
                                                               noise, device, results)
    sides = {"ours": ours} if upstream is None else {"ours": ours, "upstream": upstream}
    timed, latents = interleaved_repeats(sides, args.steps, args.repeats, device)
    results["views_sampling"] = timed["ours"]
    if upstream is not None:
        results["views_sampling(upstream)"] = {**timed["upstream"],
                                               **results.pop("upstream_setup")}
        ours_latents, theirs = latents["ours"].float(), latents["upstream"].float()
        results["upstream_latent_relative_difference"] = float(
            (ours_latents - theirs).abs().max() / theirs.abs().max())
        results["sampling_speedup_vs_upstream"] = round(
            timed["upstream"]["seconds"] / timed["ours"]["seconds"], 3)
    with stage(results, "views_decode", device):
        views = pipeline.decode(latents["ours"])
    out = MVDreamOutput(views, args.elevation, DEFAULT_AZIMUTHS,
                        camera_embedding_input(args.elevation), latents["ours"])
    if args.compare_only:
        return
    with stage(results, "cutout", device):
        cutouts, masks, _ = cut_out_views(out.views)
    asset = reconstruct(args, cutouts, device, dtype, results)
    with stage(results, "texture", device):
        views = painted_views(asset.vertices, out.views, masks, out.elevation, out.azimuths)
        asset = replace(asset, views=views, color_field=None, vertex_colors=None)
    geometry(results, asset, device)


def reconstruct(args, cutouts, device, dtype, results: dict):
    """The views' cut-outs -> a RawAsset, by ``args.reconstructor``, timed as one stage."""
    if args.reconstructor == "inflate":
        inflate = InflateAdapter()
        inflate.load(str(device))
        with stage(results, "reconstruct(inflate)", device):
            return inflate.generate(  # cut out already, as the mvdream adapter hands it over
                GenerationRequest(task="image", images=(ImagePixels(cutouts[0]),),
                                  parameters={"background": "none"}),
                lambda *a, **k: None, CancelToken())
    sys.path.insert(0, str(REPO / "benchmarks"))
    import yaml
    from hunyuan3d import full_config, write_random_variant

    from backend.models.hunyuan3d.adapter import Hunyuan3D2MVAdapter

    if args.tiny:  # the multi-view parity configuration (tiny DINO, DiT and VAE)
        with np.load(REPO / "tests" / "data" / "hunyuan" / "parity_mv.npz") as data:
            config = yaml.safe_load(str(data["config_yaml"]))
    else:
        config = full_config("mv", "turbo")
    names = [VIEW_NAMES[a] for a in DEFAULT_AZIMUTHS]
    images = tuple(ImagePixels(c, n) for c, n in zip(cutouts, names, strict=True))
    request = GenerationRequest(task="multi_image", images=images,
                                parameters={"octree_resolution": 32 if args.tiny else 256})
    with tempfile.TemporaryDirectory() as tmp:  # the adapter re-checks its folder per request
        write_random_variant(config, Path(tmp) / Hunyuan3D2MVAdapter.variant_folder("turbo"))
        adapter = Hunyuan3D2MVAdapter(Path(tmp))
        with stage(results, "reconstruct_load(hunyuan3d-2mv)", device):
            adapter.load(str(device), "float16" if dtype == torch.float16 else "float32")
        with stage(results, "reconstruct(hunyuan3d-2mv)", device):
            asset = adapter.generate(request, lambda *a, **k: None, CancelToken())
    adapter.unload()
    return asset


def interleaved_repeats(sides: dict, steps: int, repeats: int,
                        device: torch.device) -> tuple[dict, dict]:
    """Each side (name -> sample(steps) -> latents) warmed up once (2 steps: kernels,
    allocator, cuDNN choice), then ``repeats`` timed runs, the sides alternating which goes
    first -> ({name: median seconds, min, max, repeats, peak VRAM}, {name: last latents})."""
    for sample in sides.values():
        sample(2)
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    peaks: dict[str, float] = dict.fromkeys(sides, 0.0)
    latents: dict = {}
    names = list(sides)
    for index in range(repeats):
        for name in names if index % 2 == 0 else names[::-1]:
            run: dict = {}
            with stage(run, "run", device):
                latents[name] = sides[name](steps)
            seconds[name].append(run["run"]["seconds"])
            peaks[name] = max(peaks[name], run["run"]["peak_vram_mb"])
    timed = {}
    for name, values in seconds.items():
        summary = spread(values)
        timed[name] = {"seconds": summary["median"], "min": summary["min"],
                       "max": summary["max"], "repeats": summary["n"], "warmed_up": True,
                       "order": "interleaved, alternating first", "peak_vram_mb": peaks[name]}
    return timed, latents


def sdpa_memory_efficient_attention(q, k, v, attn_bias=None, op=None):
    """xformers.ops.memory_efficient_attention's call as upstream makes it ((b*h, n, d), no
    bias), served by torch's scaled_dot_product_attention (flash / memory-efficient kernels)."""
    if attn_bias is not None:
        raise NotImplementedError("upstream's MVDream passes no attention bias")
    if q.ndim == 4:  # xformers' (b, n, h, d) layout
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v)


def upstream_attention(choice: str, device: torch.device) -> str:
    """Which attention upstream's transformer blocks get -> "xformers", "sdpa" or "einsum".

    ``auto``: xformers when it imports and runs on ``device`` (its wheels carry CUDA kernels for
    one torch only), else torch's SDPA through upstream's own xformers code path; ``einsum`` is
    upstream's fallback without xformers (fp32 scores, materialised softmax).
    """
    from mvdream.ldm.modules import attention

    if choice in ("auto", "xformers"):
        try:
            import xformers.ops

            probe = torch.zeros(1, 8, 64, device=device, dtype=torch.float16
                                if device.type == "cuda" else torch.float32)
            xformers.ops.memory_efficient_attention(probe, probe, probe)
            attention.XFORMERS_IS_AVAILBLE = True
            return "xformers"
        except Exception as error:  # not installed, no kernels for this torch / device
            if choice == "xformers":
                raise RuntimeError(f"xformers asked for but not usable: {error}") from error
    if choice in ("auto", "sdpa"):
        attention.XFORMERS_IS_AVAILBLE = True
        attention.xformers = types.SimpleNamespace(ops=types.SimpleNamespace(
            memory_efficient_attention=sdpa_memory_efficient_attention))
        return "sdpa"
    attention.XFORMERS_IS_AVAILBLE = False
    return "einsum"


def upstream_sampler(args, config, state, pipeline, noise, device, results):
    """Upstream's DDIM sampler on the same weights, prompt, cameras and initial noise ->
    sample(steps) -> latents, or None when its package is not installed."""
    try:
        from mvdream.ldm.models.diffusion.ddim import DDIMSampler
        from mvdream.ldm.modules.diffusionmodules.openaimodel import MultiViewUNetModel
    except ImportError as error:
        results["upstream"] = f"mvdream package not importable ({error}): comparison skipped"
        return None
    backend = upstream_attention(args.upstream_attention, device)  # before the blocks are built

    class Interface(torch.nn.Module):  # what DDIMSampler reads from the LDM interface
        def __init__(self, unet):
            super().__init__()
            self.model, self.num_timesteps, self.parameterization = unet, config.timesteps, "eps"
            for key in ("betas", "alphas_cumprod", "alphas_cumprod_prev"):
                self.register_buffer(key, state[key].to(device))
            self.device = device

        def apply_model(self, x, t, cond):
            return self.model(x, t, **cond)

    unet = MultiViewUNetModel(
        image_size=32, in_channels=4, out_channels=4, model_channels=config.model_channels,
        attention_resolutions=list(config.attention_resolutions),
        num_res_blocks=config.num_res_blocks, channel_mult=list(config.channel_mult),
        num_head_channels=config.num_head_channels, use_spatial_transformer=True,
        use_linear_in_transformer=True, transformer_depth=1, context_dim=config.context_dim,
        use_checkpoint=False, legacy=False, camera_dim=config.camera_dim)
    prefix = "model.diffusion_model."
    unet.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    unet = unet.to(device).eval()
    sampler = DDIMSampler(Interface(unet))
    if device.type != "cuda":
        sampler.register_buffer = lambda name, value: setattr(sampler, name, value)
    cond = pipeline.encode_prompt(PROMPT).float().repeat(4, 1, 1)
    uncond = pipeline.encode_prompt("").float().repeat(4, 1, 1)
    cameras = torch.from_numpy(camera_embedding_input(args.elevation)).to(device)
    c = {"context": cond, "camera": cameras, "num_frames": 4}
    uc = {"context": uncond, "camera": cameras, "num_frames": 4}
    autocast = torch.autocast(device.type, dtype=pipeline.dtype,
                              enabled=pipeline.dtype != torch.float32)
    factor = config.latent_factor
    results["upstream_setup"] = {"attention": backend,
                                 "xformers_importable": importlib.util.find_spec("xformers")
                                 is not None,
                                 "autocast": str(pipeline.dtype),
                                 "checkout": upstream_provenance(_upstream_root())}

    def sample(steps: int) -> torch.Tensor:
        with torch.no_grad(), autocast:
            latents, _ = sampler.sample(
                S=steps, conditioning=c, batch_size=4,
                shape=[4, args.image_size // factor, args.image_size // factor], verbose=False,
                unconditional_guidance_scale=7.5, unconditional_conditioning=uc, eta=0.0,
                x_T=noise.to(device))
        return latents

    return sample


def _upstream_root() -> Path | None:
    """The checkout the mvdream package was imported from (the folder holding it)."""
    import mvdream

    return Path(mvdream.__file__).resolve().parents[1]


def run_shap_e(args, device, dtype, results: dict) -> None:
    from backend.models.shap_e.adapter import ShapETextAdapter
    from backend.models.shap_e.config import FULL_TEXT
    from backend.models.shap_e.config import TINY as SHAP_E_TINY
    from backend.models.shap_e.testing import write_shap_e_text

    with tempfile.TemporaryDirectory() as tmp:
        write_shap_e_text(Path(tmp), SHAP_E_TINY if args.tiny else FULL_TEXT)
        adapter = ShapETextAdapter(Path(tmp))
        with stage(results, "load", device):
            adapter.load(str(device), "float16" if dtype == torch.float16 else "float32")
        stamps: dict[str, float] = {}
        start = time.perf_counter()

        def progress(stage_name, step, total, *rest, **kwargs):
            stamps[stage_name] = time.perf_counter() - start

        request = GenerationRequest(task="text", prompt=PROMPT, parameters={
            "steps": 2 if args.tiny else 64, "grid_size": 32 if args.tiny else args.grid})
        with stage(results, "generate", device):
            asset = adapter.generate(request, progress, CancelToken())
        results["generate_split_s"] = {"diffusion": round(stamps["diffusion"], 4),
                                       "mesh": round(stamps["mesh"] - stamps["diffusion"], 4)}
        results["generate_warnings"] = asset.warnings
        if len(asset.faces):
            geometry(results, asset, device)
            smooth = smooth_surface(adapter.pipeline.shap_e_renderer, args.grid, device)
            geometry(results, replace(asset, vertices=smooth[0], faces=smooth[1],
                                      vertex_colors=asset.color_field(smooth[0])),
                     device, "geometry_pipeline(smooth surface)")


def smooth_surface(renderer, grid: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """A lumpy closed surface polygonised at ``grid`` by Shap-E's own mesh decoder.

    Three overlapping spheres: about the face count a real object gives at this grid.
    """
    from backend.models.shap_e.mesh import TO_BACKEND, lattice_points

    points = lattice_points(grid, torch.device("cpu"), torch.float32)
    field = torch.full((len(points),), -1.0)
    for centre, radius in (((0.0, 0.0, -0.2), 0.55), ((0.3, 0.1, 0.3), 0.4),
                           ((-0.3, -0.1, 0.3), 0.35)):
        inside = radius - (points - torch.tensor(centre)).norm(dim=1)
        field = torch.maximum(field, inside)
    padded = torch.full((grid + 2,) * 3, -1.0)
    padded[1:-1, 1:-1, 1:-1] = field.reshape((grid,) * 3)
    step = 2.0 / (grid - 1)
    mesh = renderer.mesh_decoder(padded.to(device), torch.full((3,), -1.0 - step, device=device),
                                 torch.full((3,), 2.0 + 2 * step, device=device))
    vertices = mesh.verts.float().cpu().numpy() @ TO_BACKEND
    faces = mesh.faces.long().cpu().numpy()
    return vertices.astype(np.float32), faces


def run_bridge(args, device, dtype, results: dict) -> None:
    """An SD-Turbo-sized pipeline (the SD 2.1 UNet, OpenCLIP-H text) -> inflate -> pipeline."""
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from backend.models.image_bridge.text_to_image import run_text_to_image
    from backend.models.mvdream.convert import vae_kwargs
    from backend.models.mvdream.unet import unet_kwargs

    config = TINY if args.tiny else SD21_BASE_4VIEW
    with tempfile.TemporaryDirectory() as tmp:
        vocab = write_clip_tokenizer(Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    with stage(results, "load", device):
        kwargs = unet_kwargs(config)
        kwargs.pop("class_embed_type")
        kwargs.pop("projection_class_embeddings_input_dim")
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=max(vocab, config.vocab_size), hidden_size=config.text_width,
            intermediate_size=4 * config.text_width, num_attention_heads=config.text_heads,
            num_hidden_layers=config.text_layers - 1, hidden_act="gelu", projection_dim=1024))
        pipe = StableDiffusionPipeline(
            unet=UNet2DConditionModel(**kwargs), vae=AutoencoderKL(**vae_kwargs(config)),
            text_encoder=text, tokenizer=tokenizer,
            scheduler=EulerAncestralDiscreteScheduler(
                beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                timestep_spacing="trailing", steps_offset=1),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        ).to(device, dtype)
        pipe.set_progress_bar_config(disable=True)
    size = 64 if args.tiny else 512
    with stage(results, "text_to_image", device):
        picture = run_text_to_image(pipe, PROMPT, steps=1, guidance_scale=0.0, size=size, seed=0,
                                    progress=lambda *a, **k: None, cancel=CancelToken(),
                                    stage="text_to_image")
    inflate = InflateAdapter()
    inflate.load(str(device))
    picture[: size // 8] = 255  # a random picture model draws noise: give the key a border
    picture[-size // 8:] = 255
    picture[:, : size // 8] = 255
    picture[:, -size // 8:] = 255
    with stage(results, "image_to_3d(inflate)", device):
        asset = inflate.generate(GenerationRequest(task="image", images=(ImagePixels(picture),)),
                                 lambda *a, **k: None, CancelToken())
    geometry(results, asset, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="mvdream,shap-e,bridge")
    parser.add_argument("--steps", type=int, default=50, help="MVDream DDIM steps (divide 1000)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--elevation", type=float, default=0.0)
    parser.add_argument("--grid", type=int, default=128, help="Shap-E marching-cubes grid")
    parser.add_argument("--reconstructor", choices=("hunyuan3d-2mv", "inflate"),
                        default="hunyuan3d-2mv", help="mvdream path: views -> mesh")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (smoke)")
    parser.add_argument("--no-upstream", action="store_true")
    parser.add_argument("--repeats", "--upstream-repeats", type=int, default=5,
                        help="timed MVDream sampling runs per side after a warm-up each")
    parser.add_argument("--upstream-attention", choices=("auto", "xformers", "sdpa", "einsum"),
                        default="auto", help="upstream's attention (auto: xformers if usable, "
                        "else torch SDPA through its xformers code path)")
    parser.add_argument("--compare-only", action="store_true",
                        help="mvdream path: stop after the sampling comparison and view decode "
                        "(no reconstruction, texture, geometry pipeline or its numba warm-up)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: a new one in benchmarks/runs/)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.float16 if device.type == "cuda" and args.dtype == "float16" else torch.float32
    if args.tiny:
        args.steps, args.image_size, args.grid = min(args.steps, 2), 32, 32
    table: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda"
                   else platform.processor() or platform.machine(),
                   "tiny": args.tiny, "dtype": str(dtype), "steps": args.steps,
                   "image_size": args.image_size, "paths": {}}
    # numba's one-off compile (cached on disk) is setup's cost, not a stage's: pay it first.
    if not args.compare_only:
        table["geometry_warmup_s"] = round(warm_up(), 3)
    runners = {"mvdream": run_mvdream, "shap-e": run_shap_e, "bridge": run_bridge}
    for name in args.paths.split(","):
        results: dict = {}
        runners[name](args, device, dtype, results)
        table["paths"][name] = results
    print_table(table)
    args.out = args.out or default_out("text_to_3d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=2))
    print(f"wrote {args.out}")


def print_table(table: dict) -> None:
    print(f"device {table['device']}  dtype {table['dtype']}  tiny {table['tiny']}")
    print(f"{'path':<10}{'stage':<36}{'seconds':>10}{'peak VRAM MB':>14}")
    for path, results in table["paths"].items():
        total = 0.0
        for name, value in results.items():
            if isinstance(value, dict) and "seconds" in value:
                if name != "load" and "upstream" not in name and "smooth" not in name:
                    total += value["seconds"]
                print(f"{path:<10}{name:<36}{value['seconds']:>10.3f}"
                      f"{value['peak_vram_mb']:>14.0f}")
            elif isinstance(value, dict):
                for key, item in value.items():
                    print(f"{path:<10}{name + '.' + key:<46}{item}")
            else:
                print(f"{path:<10}{name:<36}{value}")
        print(f"{path:<10}{'total (excl. load)':<36}{total:>10.3f}")
        results["total_excluding_load_s"] = round(total, 4)


if __name__ == "__main__":
    main()
