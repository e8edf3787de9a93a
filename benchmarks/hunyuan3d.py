"""Hunyuan3D-2 shape generation: our implementation against hy3dgen, stage by stage.

Full-size networks with random weights (written once in the official layout and loaded by both
from the same file), the same preprocessed image tensor and seed for both, default settings
unless overridden. Stages: load, conditioning, sampling, volume decoding, marching cubes; for each
the wall time (CUDA-synchronised) and peak VRAM. Outputs are compared (latents, logits, mesh), so
the speed-up is measured for the same result. Random weights would give a noise field whose
marching cubes dwarfs everything, so the VAE decoder's residual branches are zeroed and its
query projection kept to the xyz inputs: the field is a smooth function of position, every
matrix multiply still runs at full size.

hy3dgen is optional: install it (``pip install --no-deps hy3dgen==2.0.2`` plus opencv and
torchvision) to get the comparison columns; without it only our stages are reported. With
``--decoding flashvdm`` both sides decode with FlashVDM (octree levels + adaptive key selection,
upstream's ``enable_flashvdm_decoder`` defaults, same VAE weights). With
``--texture`` the Hunyuan3D-Paint stage is timed too (benchmarks/hunyuan3d_texture.py: full-size
random delight and paint models, per-part seconds and peak VRAM; no hy3dgen column).

Each side loads once, runs one warm-up job, then ``--repeats`` timed jobs (median, min, max
per stage; peak VRAM and the stage's own share above what was resident at its start).
hy3dgen decodes with the same decoder as ours (``--upstream-decoder`` to pick another, e.g.
dense, its pipeline default) and the same points per chunk (``--num-chunks``); its hierarchical
decoder gets one cast fixed (:class:`FloatIndexTorch`, ``--upstream-as-is`` to leave it). The
JSON records both sides' decoders, chunk sizes, the upstream commit and any patch.

    .venv/backend/bin/python benchmarks/hunyuan3d.py --model mini --variant standard
    .venv/backend/bin/python benchmarks/hunyuan3d.py --variant turbo --our-chunks 32768 65536
    .venv/backend/bin/python benchmarks/hunyuan3d.py --tiny            # CPU smoke test
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
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.models.hunyuan3d.config import parse_shape_config, tiny_raw_config  # noqa: E402
from backend.models.hunyuan3d.loading import load_shape_models  # noqa: E402
from backend.models.hunyuan3d.pipeline import ShapePipeline, ShapeSettings  # noqa: E402
from backend.models.hunyuan3d.testing import random_state, smooth_field, write_variant  # noqa: E402
from backend.models.hunyuan3d.volume import extract_surface  # noqa: E402
from benchmarks.common import upstream_provenance  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402

MANIFEST = REPO / "tests" / "data" / "hunyuan" / "full_size_manifest.json"
FOLDERS = {
    "mini": "hunyuan3d-dit-v2-mini",
    "full": "hunyuan3d-dit-v2-0",
    "mv": "hunyuan3d-dit-v2-mv",
}


def full_config(model: str, variant: str) -> dict:
    configs = json.loads(MANIFEST.read_text())["configs"]
    base = dict(configs["hunyuan3d-dit-v2-mini" if model == "mini" else "hunyuan3d-dit-v2-0"])
    turbo = variant == "turbo"
    base["model"] = {**base["model"], "params": {**base["model"]["params"]}}
    base["model"]["params"]["guidance_embed"] = variant in ("turbo", "fast")
    if turbo:
        base["scheduler"] = configs["hunyuan3d-dit-v2-mini-turbo"]["scheduler"]
    if model == "mv":
        base["conditioner"] = configs["hunyuan3d-dit-v2-mv-turbo"]["conditioner"]
    return base


def tiny_config() -> dict:
    """The parity data's plain (CFG, Euler) tiny config."""
    return tiny_raw_config("standard")


def write_random_variant(raw: dict, folder: Path, seed: int = 0) -> None:
    """Random weights for ``raw`` in the official single-file layout (fp16 file), with the
    smooth occupancy field of the module docstring (the family's testing writers)."""
    state = smooth_field(random_state(raw, seed))
    write_variant(folder, raw, {key: value.half() for key, value in state.items()})


@contextlib.contextmanager
def stage(results: dict, name: str, device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    held = torch.cuda.memory_allocated() if device.type == "cuda" else 0
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize()
    results[name] = {
        "seconds": time.perf_counter() - start,
        "peak_vram_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0,
        # What the stage itself added at its peak (the weights and inputs already resident at
        # its start excluded): the figure the decoders' memory work moves.
        "peak_above_start_mb": (torch.cuda.max_memory_allocated() - held) / 2**20
        if device.type == "cuda"
        else 0.0,
    }


def run_ours(
    folder: Path,
    image: torch.Tensor,
    views: tuple[int, ...],
    settings: list[ShapeSettings],
    device: torch.device,
    dtype: torch.dtype,
    repeats: int,
) -> tuple[dict, list[dict], dict]:
    """Load once, one warm-up job per settings, then ``repeats`` timed jobs per settings
    -> ({"load": ...}, [per-settings stage summaries], outputs of the first settings' last job)."""
    load: dict = {}
    with stage(load, "load", device):
        models = load_shape_models(folder, str(device), dtype)
    pipeline = ShapePipeline(models)
    guided = not models.config.dit.guidance_embed
    summaries, outputs = [], {}
    for index, job in enumerate(settings):
        samples = []
        for _ in range(repeats + 1):  # the first is the warm-up, not reported
            results: dict = {}
            with torch.inference_mode():
                with stage(results, "conditioning", device):
                    cond = pipeline.condition(image, views, guided)
                with stage(results, "sampling", device):
                    latents = pipeline.sample(cond, job)
                with stage(results, "volume_decoding", device):
                    logits, box = pipeline.decode(latents, job)
                with stage(results, "marching_cubes", device):
                    vertices, faces = extract_surface(logits, box, job.mc_level)
            samples.append(results)
            if index == 0:
                outputs = {"latents": latents.float().cpu(), "logits": logits.cpu(),
                           "vertices": vertices, "faces": faces}  # fmt: skip
            del cond, latents, logits
        summaries.append(summarise(samples[1:]))
    del models, pipeline
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return load["load"], summaries, outputs


def summarise(samples: list[dict]) -> dict:
    """Per stage over the repeats: median (the headline "seconds"), min and max seconds; the
    largest peak; plus the shape total per repeat summarised the same way."""
    for sample in samples:
        sample["shape_total"] = total(sample)
    summary = {}
    for name in samples[0]:
        seconds = [sample[name]["seconds"] for sample in samples]
        summary[name] = {
            "seconds": float(np.median(seconds)),
            "min_seconds": min(seconds),
            "max_seconds": max(seconds),
            "repeats": len(seconds),
            "peak_vram_mb": max(sample[name]["peak_vram_mb"] for sample in samples),
            "peak_above_start_mb": max(
                sample[name].get("peak_above_start_mb", 0.0) for sample in samples
            ),
        }
    return summary


def upstream_available() -> bool:
    return importlib.util.find_spec("hy3dgen") is not None


def upstream_root() -> Path:
    """The checkout hy3dgen was imported from (the folder holding the package)."""
    import hy3dgen

    return Path(hy3dgen.__file__).resolve().parents[1]


class FloatIndexTorch:
    """``torch`` for hy3dgen's volume_decoders module, except that ``stack`` of integer tensors
    returns float32.

    Its hierarchical decoder stacks the fine grid's integer indices and scales them with
    ``torch.tensor(spacing, dtype=<that int64>)``: the spacing (2.02 / r) truncates to 0 and the
    box corner to -1, so every fine query lands on one corner (hy3dgen 2.0.2 and upstream's
    master alike). Made float, the same line computes index * spacing + corner, as its FlashVDM
    decoder does; the queries, their number and chunks are otherwise upstream's.
    """

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def stack(tensors, dim: int = 0, **kwargs) -> torch.Tensor:
        out = torch.stack(tensors, dim=dim, **kwargs)
        return out if out.is_floating_point() else out.to(torch.float32)


class UpstreamRunner:
    """hy3dgen 2.0.2 loading the same folder, fed the same tensor, stage by stage."""

    def __init__(
        self,
        folder: Path,
        device: torch.device,
        dtype: torch.dtype,
        decoder: str = "dense",
        spacing_fix: bool = False,
    ) -> None:
        from hy3dgen.shapegen.pipelines import Hunyuan3DDiTFlowMatchingPipeline

        if spacing_fix:
            from hy3dgen.shapegen.models.autoencoders import volume_decoders

            volume_decoders.torch = FloatIndexTorch()

        self.device, self.dtype, self.load_result = device, dtype, {}
        timing: dict = {}
        with stage(timing, "load", device):
            self.pipe = Hunyuan3DDiTFlowMatchingPipeline.from_single_file(
                str(folder / "model.fp16.safetensors"),
                str(folder / "config.yaml"),
                device=str(device),
                dtype=dtype,
                use_safetensors=True,
            )
        self.load_result = timing["load"]
        if decoder == "flashvdm":  # upstream's enable_flashvdm defaults, same VAE weights
            self.pipe.vae.enable_flashvdm_decoder(
                enabled=True, adaptive_kv_selection=True, topk_mode="mean", mc_algo="mc"
            )
        elif decoder == "hierarchical":  # upstream's octree, exact attention
            self.pipe.vae.enable_flashvdm_decoder(
                enabled=True, adaptive_kv_selection=False, mc_algo="mc"
            )
        # "dense": the pipeline's default VanillaVolumeDecoder, left as loaded.

    def run(
        self,
        image: torch.Tensor,
        views: tuple[int, ...],
        steps: int,
        octree_resolution: int,
        num_chunks: int,
    ) -> tuple[dict, dict]:
        pipe, results = self.pipe, {}
        multi_view = image.ndim == 5
        prepared = {"image": image, "mask": torch.ones_like(image[..., :1, :, :])}
        extra = {"view_idxs": [views]} if multi_view else {}
        pipe.prepare_image = lambda _image: {**prepared, **extra}
        guided = not getattr(pipe.model, "guidance_embed", False)
        with torch.inference_mode():
            with stage(results, "conditioning", self.device):
                pipe.encode_cond(image.to(self.device, self.dtype), dict(extra), guided, False)
            with stage(results, "sampling", self.device):
                latents = pipe(
                    image="prepared",
                    num_inference_steps=steps,
                    guidance_scale=5.0,
                    generator=torch.manual_seed(1234),
                    output_type="latent",
                    enable_pbar=False,
                )
            # __call__ encodes the condition again: count that under conditioning only.
            results["sampling"]["seconds"] -= results["conditioning"]["seconds"]
            with stage(results, "volume_decoding", self.device):
                decoded = pipe.vae(1.0 / pipe.vae.scale_factor * latents)
                logits = pipe.vae.volume_decoder(
                    decoded,
                    pipe.vae.geo_decoder,
                    bounds=1.01,
                    num_chunks=num_chunks,
                    octree_resolution=octree_resolution,
                    mc_level=0.0,
                    enable_pbar=False,
                )
            with stage(results, "marching_cubes", self.device):
                mesh = pipe.vae.surface_extractor(
                    logits, mc_level=0.0, bounds=1.01, octree_resolution=octree_resolution
                )[0]
        # hy3dgen returns None where marching cubes finds no surface (its shipped hierarchical
        # decoder's field): an empty mesh, reported as such rather than a crash.
        return results, {
            "latents": latents.float().cpu(),
            "logits": logits[0].float().cpu(),
            "vertices": np.zeros((0, 3)) if mesh is None else mesh.mesh_v,
            "faces": np.zeros((0, 3), np.int64) if mesh is None else mesh.mesh_f,
        }


def compare(ours: dict, theirs: dict) -> dict:
    from scipy.spatial import cKDTree

    latents = float(
        (ours["latents"] - theirs["latents"]).abs().max() / theirs["latents"].abs().max()
    )
    both = torch.isfinite(theirs["logits"]) & torch.isfinite(ours["logits"])
    logits = (
        float((ours["logits"][both] - theirs["logits"][both]).abs().max())
        if both.any()
        else float("nan")
    )
    # Non-finite vertices (an octree cell left undecided feeds NaN to marching cubes) are
    # counted, not compared.
    finite = {name: np.asarray(side["vertices"], dtype=np.float64) for name, side in
              (("ours", ours), ("theirs", theirs))}  # fmt: skip
    dropped = {name: int((~np.isfinite(v).all(axis=1)).sum()) for name, v in finite.items()}
    finite = {name: v[np.isfinite(v).all(axis=1)] for name, v in finite.items()}
    if min(len(v) for v in finite.values()) == 0:
        return {
            "latents_max_rel_diff": latents,
            "logits_max_abs_diff_where_both_decoded": logits,
            "mesh_vertices": [len(ours["vertices"]), len(theirs["vertices"])],
            "non_finite_vertices": [dropped["ours"], dropped["theirs"]],
            "chamfer_over_diagonal": None,  # a side without a (finite) surface
        }
    diagonal = float(np.linalg.norm(np.ptp(finite["theirs"], axis=0)))
    rng = np.random.default_rng(0)
    a, b = (
        v[rng.choice(len(v), min(20_000, len(v)), replace=False)]
        for v in (finite["ours"], finite["theirs"])
    )
    chamfer = (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2 / diagonal
    return {
        "latents_max_rel_diff": latents,
        "logits_max_abs_diff_where_both_decoded": logits,
        "mesh_vertices": [len(ours["vertices"]), len(theirs["vertices"])],
        "non_finite_vertices": [dropped["ours"], dropped["theirs"]],
        "chamfer_over_diagonal": float(chamfer),
    }


def print_table(table: dict) -> None:
    """Median seconds [min-max], the ratio, peak VRAM and (+) the stage's own share of it."""
    print(
        f"{'stage':<22}{'ours s':>22}{'hy3dgen s':>22}{'ratio':>8}"
        f"{'ours MB (+stage)':>18}{'hy3dgen MB (+stage)':>21}"
    )

    def seconds(row: dict | None) -> str:
        if row is None:
            return "-"
        if "min_seconds" not in row:
            return f"{row['seconds']:.3f}"
        return f"{row['seconds']:.3f} [{row['min_seconds']:.3f}-{row['max_seconds']:.3f}]"

    def memory(row: dict | None) -> str:
        if row is None:
            return "-"
        return f"{row['peak_vram_mb']:.0f} (+{row.get('peak_above_start_mb', 0.0):.0f})"

    ours, theirs = table["ours"], table.get("hy3dgen", {})
    rows = [(name, ours.get(name), theirs.get(name)) for name in (
        "load", "conditioning", "sampling", "volume_decoding", "marching_cubes", "shape_total",
        "texture")]  # fmt: skip
    rows += [(f"decode@{key.rsplit('_', 1)[1]}", table[key]["volume_decoding"], None)
             for key in table if key.startswith("ours_chunks_")]  # fmt: skip
    for name, mine, other in rows:
        if mine is None:
            print(f"{name:<22}{'not implemented':>22}")
            continue
        ratio = f"{other['seconds'] / mine['seconds']:.2f}x" if other else "-"
        print(
            f"{name:<22}{seconds(mine):>22}{seconds(other):>22}{ratio:>8}"
            f"{memory(mine):>18}{memory(other):>21}"
        )


def total(results: dict) -> dict:
    parts = ("conditioning", "sampling", "volume_decoding", "marching_cubes")
    return {
        "seconds": sum(results[p]["seconds"] for p in parts),
        "peak_vram_mb": max(results[p]["peak_vram_mb"] for p in parts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(FOLDERS), default="mini")
    parser.add_argument("--variant", choices=("standard", "fast", "turbo"), default="standard")
    parser.add_argument("--steps", type=int, default=0, help="0: 50 standard, 10 fast, 5 turbo")
    parser.add_argument(
        "--octree-resolution", type=int, default=None, help="default 384 (48 with --tiny)"
    )
    parser.add_argument(
        "--decoding", choices=("dense", "hierarchical", "flashvdm"), default="hierarchical"
    )
    parser.add_argument(
        "--num-chunks", type=int, default=None,
        help="hy3dgen's points per decoding chunk (default: ours, the first --our-chunks; "
        "8000 is its pipeline default)",
    )  # fmt: skip
    parser.add_argument(
        "--our-chunks", type=int, nargs="+", default=[32_768],
        help="our points per decoding chunk (the service's default); several: each is timed, "
        "the first is compared with hy3dgen",
    )  # fmt: skip
    parser.add_argument(
        "--upstream-decoder", choices=("dense", "hierarchical", "flashvdm"), default=None,
        help="hy3dgen's volume decoder (default: the same as --decoding; dense is its "
        "pipeline default)",
    )  # fmt: skip
    parser.add_argument(
        "--upstream-as-is", action="store_true",
        help="leave hy3dgen's hierarchical decoder as shipped: it casts the fine points' "
        "spacing to int64 (all fine queries at one corner), so its output does not agree; by "
        "default that one cast is made float (FloatIndexTorch) and the JSON says so",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed jobs after a warm-up")
    parser.add_argument("--tiny", action="store_true", help="tiny config on the CPU (smoke test)")
    parser.add_argument("--no-upstream", action="store_true")
    parser.add_argument("--texture", action="store_true", help="also time the paint stage")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: a new one in benchmarks/runs/)"
    )
    args = parser.parse_args()

    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    raw = tiny_config() if args.tiny else full_config(args.model, args.variant)
    if args.tiny:
        args.octree_resolution = args.octree_resolution or 48
        args.our_chunks = [8192]
        args.repeats = min(args.repeats, 1)
    args.octree_resolution = args.octree_resolution or 384
    args.num_chunks = args.num_chunks or args.our_chunks[0]
    upstream_decoder = args.upstream_decoder or args.decoding
    spacing_fix = upstream_decoder == "hierarchical" and not args.upstream_as_is
    steps = args.steps or {"standard": 50, "fast": 10, "turbo": 5}[args.variant]
    config = parse_shape_config(raw)
    size = config.image_processor.size
    views = (0, 2, 3) if config.conditioner.multi_view else (0,)
    generator = torch.Generator().manual_seed(1)
    shape = (1, len(views), 3, size, size) if config.conditioner.multi_view else (1, 3, size, size)
    image = torch.rand(shape, generator=generator) * 2 - 1
    table: dict = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
        "model": "tiny" if args.tiny else args.model,
        "variant": args.variant,
        "steps": steps,
        "octree_resolution": args.octree_resolution,
        "decoding": args.decoding,
        "our_chunks": args.our_chunks,
        "upstream_decoder": upstream_decoder,
        "upstream_num_chunks": args.num_chunks,
        "upstream_patch": "hierarchical decoder: the fine points' int64 spacing cast made float "
        "(FloatIndexTorch)" if spacing_fix else None,
        "repeats": args.repeats,
        "timing": "warm-up job first; seconds = median of the repeats (min/max beside)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FOLDERS[args.model]
        write_random_variant(raw, folder)
        settings = [
            ShapeSettings(
                steps=steps,
                guidance_scale=5.0,
                seed=1234,
                octree_resolution=args.octree_resolution,
                num_chunks=chunk,
                decoding=args.decoding,
            )
            for chunk in args.our_chunks
        ]
        load, summaries, ours_out = run_ours(
            folder, image, views, settings, device, dtype, args.repeats
        )
        table["ours"] = {"load": load, **summaries[0]}
        for chunk, summary in zip(args.our_chunks[1:], summaries[1:], strict=True):
            table[f"ours_chunks_{chunk}"] = summary
        if not args.no_upstream and upstream_available():
            runner = UpstreamRunner(folder, device, dtype, upstream_decoder, spacing_fix)
            samples = []
            for _ in range(args.repeats + 1):  # the first is the warm-up, not reported
                results, theirs_out = runner.run(
                    image,
                    views,
                    steps=steps,
                    octree_resolution=args.octree_resolution,
                    num_chunks=args.num_chunks,
                )
                samples.append(results)
            table["hy3dgen"] = {"load": runner.load_result, **summarise(samples[1:])}
            table["same_output"] = compare(ours_out, theirs_out)
            table["upstream_checkout"] = upstream_provenance(upstream_root())
    if args.texture:
        from hunyuan3d_texture import time_texture

        table["ours"]["texture"] = time_texture(args.tiny, device, dtype)
    print_table(table)
    if args.texture:
        print(json.dumps(table["ours"]["texture"]["parts"], indent=1))
    if "same_output" in table:
        print(json.dumps(table["same_output"], indent=1))
    args.out = args.out or default_out("hunyuan3d")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
