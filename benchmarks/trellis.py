"""TRELLIS image-to-3D, every stage timed: random weights in the official layout, real code path.

Writes the released image model (pipeline.json, the ``ckpts/*.json`` + ``*.safetensors`` of
both flows and the structure, mesh and Gaussian decoders, fp16 torso) and a DINOv2
ViT-L/14-reg in the hub's transformers layout, with random weights; ``--tiny`` writes the test
configuration instead. It loads them through the adapter (strict loaders, the torso in
``--dtype``) and times ``generate`` stage by stage from the progress reports (the run of median
total after a warm-up run): condition (framing + DINOv2), structure (SS flow sampling, decoder,
occupied voxels), latent (SLat flow sampling), decode (mesh decoder, then the Gaussian decoder),
mesh (FlexiCubes and the colour grid) and the hand-over (RawAsset, 3DGS .ply). ``--pipeline``
also runs, in every run, the geometry pipeline a job runs (its options from a default JobSpec:
20k faces, the job's texture size, on the job's device) to the GLB bytes, and reports image ->
GLB end to end (model + pipeline) per run.

Random weights occupy a third of the structure grid; a real model marks a shell of some 20k of
its 64^3 voxels. So before timing, the structure decoder's output bias is shifted until exactly
``--voxels`` voxels are occupied for the run's seed (every later stage scales with that count).
Random features put the FlexiCubes surface through more cells than a real asset would, so the
mesh stage is an upper bound. Peak memory on CUDA.

    .venv/backend/bin/python benchmarks/trellis.py --device cuda --dtype float16
    .venv/backend/bin/python benchmarks/trellis.py --tiny --device cpu --runs 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.cancellation import CancelToken  # noqa: E402
from backend.models.base import GenerationRequest, ImagePixels  # noqa: E402
from backend.models.trellis import testing  # noqa: E402
from backend.models.trellis.adapter import (  # noqa: E402
    GAUSSIAN_DECODER_STEM,
    GAUSSIAN_PLY,
    MESH_DECODER_STEM,
    SS_DECODER_STEM,
    TrellisImageAdapter,
)
from backend.models.trellis.config import (  # noqa: E402
    SLAT_FLOW,
    SS_DECODER,
    SS_FLOW,
    network_spec_from_dict,
)
from backend.models.trellis.dinov2 import DinoConfig  # noqa: E402
from backend.models.trellis.loading import stored_state, write_network  # noqa: E402
from backend.models.trellis.pipeline import decoder_blocks  # noqa: E402
from backend.models.trellis.ss_decoder import SparseStructureDecoder  # noqa: E402
from backend.models.trellis.ss_flow import SparseStructureFlowModel  # noqa: E402
from benchmarks.common import disc_image, host_profile, synchronised_now  # noqa: E402

# The released checkpoints' JSON args (research 1.0; the hub's ckpts/*.json).
TRUNK = {"resolution": 64, "model_channels": 768, "latent_channels": 8, "num_blocks": 12,
         "num_heads": 12, "mlp_ratio": 4, "attn_mode": "swin", "window_size": 8,
         "use_fp16": True}  # fmt: skip
RELEASED = {
    SS_FLOW: {"name": "SparseStructureFlowModel", "args": {
        "resolution": 16, "in_channels": 8, "out_channels": 8, "model_channels": 1024,
        "cond_channels": 1024, "num_blocks": 24, "num_heads": 16, "mlp_ratio": 4,
        "patch_size": 1, "pe_mode": "ape", "qk_rms_norm": True, "use_fp16": True}},
    SS_DECODER: {"name": "SparseStructureDecoder", "args": {
        "out_channels": 1, "latent_channels": 8, "num_res_blocks": 2,
        "num_res_blocks_middle": 2, "channels": [512, 128, 32], "use_fp16": True}},
    SLAT_FLOW: {"name": "SLatFlowModel", "args": {
        "resolution": 64, "in_channels": 8, "out_channels": 8, "model_channels": 1024,
        "cond_channels": 1024, "num_blocks": 24, "num_heads": 16, "mlp_ratio": 4,
        "patch_size": 2, "num_io_res_blocks": 2, "io_block_channels": [128], "pe_mode": "ape",
        "qk_rms_norm": True, "use_fp16": True}},
    "mesh": {"name": "SLatMeshDecoder", "args": {
        **TRUNK, "representation_config": {"use_color": True}}},
    "gaussians": {"name": "SLatGaussianDecoder", "args": {
        **TRUNK, "representation_config": {
            "lr": {"_xyz": 1.0, "_features_dc": 1.0, "_opacity": 1.0, "_scaling": 1.0,
                   "_rotation": 0.1},
            "perturb_offset": True, "voxel_size": 1.5, "num_gaussians": 32,
            "2d_filter_kernel_size": 0.1, "3d_filter_kernel_size": 9e-4, "scaling_bias": 4e-3,
            "opacity_bias": 0.1, "scaling_activation": "softplus"}}},
}  # fmt: skip


def write_full_size(folder: Path) -> None:
    """The released image model's files with random weights (about 4 GB), and DINOv2."""
    config = testing.pipeline_config(testing.IMAGE_MODEL)
    testing.write_pipeline(folder, config)
    specs = {role: network_spec_from_dict(raw, role) for role, raw in RELEASED.items()}
    flow = testing.randomize(SparseStructureFlowModel(specs[SS_FLOW].config), seed=1)
    write_network(folder / config.models[SS_FLOW], specs[SS_FLOW], stored_state(flow))
    del flow
    decoder = testing.randomize(SparseStructureDecoder(specs[SS_DECODER].config), seed=2)
    write_network(folder / SS_DECODER_STEM, specs[SS_DECODER], stored_state(decoder))
    del decoder
    write_network(folder / config.models[SLAT_FLOW], specs[SLAT_FLOW],
                  testing.slat_flow_state(specs[SLAT_FLOW].config, seed=3))  # fmt: skip
    write_network(folder / MESH_DECODER_STEM, specs["mesh"],
                  testing.mesh_decoder_state(specs["mesh"].config, seed=4))  # fmt: skip
    write_network(folder / GAUSSIAN_DECODER_STEM, specs["gaussians"],
                  testing.gaussian_decoder_state(specs["gaussians"].config, seed=5))  # fmt: skip
    testing.write_dinov2(folder / "dinov2", DinoConfig(), seed=6)


class StageClock:
    """Progress callback keeping the (device-synchronised) time of every report."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self.now()
        self.reports: list[tuple[str, int, float]] = []

    def now(self) -> float:
        return synchronised_now(self.device)

    def __call__(self, stage, step, total, message="", preview=None) -> None:
        self.reports.append((stage, step, self.now()))

    def seconds(self, end: float, mesh_decoder_steps: int) -> dict[str, float]:
        """Per stage: first report to the next stage's first (the last: to its last report);
        ``decode`` split at the mesh decoder's end; before/after: cut-out, hand-over."""
        firsts = {}
        for stage, _, at in self.reports:
            firsts.setdefault(stage, at)
        stages = list(firsts)
        out = {"cut_out": firsts[stages[0]] - self.start}
        bounds = [*(firsts[s] for s in stages[1:]), self.reports[-1][2]]
        for stage, stop in zip(stages, bounds, strict=True):
            out[stage] = stop - firsts[stage]
        mesh_done = [at for stage, step, at in self.reports
                     if stage == "decode" and step == mesh_decoder_steps]  # fmt: skip
        if mesh_done and "decode" in out:
            out["decode.mesh_decoder"] = mesh_done[0] - firsts["decode"]
            out["decode.gaussian_decoder"] = out["decode"] - out["decode.mesh_decoder"]
        out["hand_over"] = end - self.reports[-1][2]
        out["total"] = end - self.start
        return out


class Stop(Exception):  # noqa: N818 - a sentinel, not an error
    pass


def calibrate_voxels(adapter: TrellisImageAdapter, request: GenerationRequest, voxels: int) -> int:
    """Shift the structure decoder's output bias so that ``voxels`` voxels are occupied for
    this request (a partial run to the structure's logits); returns the count before."""
    decoder = adapter.pipeline.networks[SS_DECODER]
    captured = []
    hook = decoder.register_forward_hook(lambda _m, _i, out: captured.append(out.float()))

    def stop_at_latent(stage, step, total, message="", preview=None) -> None:
        if stage == "latent":
            raise Stop

    try:
        adapter.generate(request, stop_at_latent, CancelToken())
    except Stop:
        pass
    finally:
        hook.remove()
    logits = captured[-1].flatten()
    before = int((logits > 0).sum())
    kth = torch.topk(logits, min(voxels, logits.numel())).values[-1]
    nxt = torch.topk(logits, min(voxels + 1, logits.numel())).values[-1]
    with torch.no_grad():  # the threshold halfway between the k-th and the (k+1)-th logit
        decoder.out_layer[2].bias -= ((kth + nxt) / 2).to(decoder.out_layer[2].bias.dtype)
    return before


GLB_QUALITY = ("inner_shells_removed", "inner_faces_removed", "pieces", "mean_distance_pct",
               "max_distance_pct", "texture_coverage")  # fmt: skip


def game_ready_glb(raw, device: str):
    """The GLB a default image job makes of ``raw``: the job's options, on the job's device."""
    from backend.geometry.pipeline import run_pipeline
    from backend.jobs.game_ready import pipeline_options
    from backend.jobs.spec import JobSpec

    start = time.perf_counter()
    spec = JobSpec(model="trellis-image-large", task="image")
    result = run_pipeline(raw, pipeline_options(spec, raw, device=device))
    result.timings_s["total"] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", help="torso dtype of the networks")
    parser.add_argument("--quality", default="standard", choices=("draft", "standard", "high"))
    parser.add_argument("--voxels", type=int, default=20_000, help="occupied 64^3 voxels")
    parser.add_argument("--runs", type=int, default=2, help="timed runs after a warm-up one")
    parser.add_argument("--no-gaussians", action="store_true")
    parser.add_argument("--pipeline", action="store_true", help="also the GLB pipeline")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--profile", type=Path, metavar="TEXT",
                        help="with --pipeline: one more run's GLB pipeline under cProfile, here")
    parser.add_argument("--tiny", action="store_true", help="the test configs (a CPU smoke run)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = "float32" if device.type == "cpu" else args.dtype
    results: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                     else platform.processor() or platform.machine(),
                     "torch": torch.__version__, "dtype": dtype, "quality": args.quality,
                     "threads": torch.get_num_threads(), "tiny": args.tiny}  # fmt: skip
    parameters = {"quality": args.quality, "gaussians": not args.no_gaussians}
    if args.tiny:
        parameters.update(testing.TINY_PARAMETERS[testing.IMAGE_MODEL], gaussians=parameters[
            "gaussians"])  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        folder = Path(scratch)
        start = time.perf_counter()
        if args.tiny:
            testing.write_tiny_weights(folder, testing.IMAGE_MODEL)
            testing.write_dinov2(folder / "dinov2")
        else:
            write_full_size(folder)
        results["write_s"] = round(time.perf_counter() - start, 2)
        adapter = TrellisImageAdapter(folder)
        adapter.component_dirs["dinov2"] = folder / "dinov2"
        start = time.perf_counter()
        adapter.load(str(device), dtype)
        results["load_s"] = round(time.perf_counter() - start, 2)
        request = adapter.check_inputs(GenerationRequest(
            task="image", images=(ImagePixels(disc_image()),), seed=1, parameters=parameters,
            target_faces=20_000, texture_size=1024))  # fmt: skip
        if not args.tiny:
            results["random_voxels"] = calibrate_voxels(adapter, request, args.voxels)
        mesh_decoder = adapter.pipeline.networks["slat_decoder_mesh"]
        mesh_steps = len(decoder_blocks(mesh_decoder)) + 1
        voxels: list[int] = []  # the structured latent's voxels, seen by the mesh decoder
        mesh_decoder.input_layer.register_forward_hook(lambda _m, i, _o: voxels.append(len(i[0])))
        runs = []
        for _ in range(args.runs + 1):  # the first run warms up (kernels, caches)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            clock = StageClock(device)
            raw = adapter.generate(request, clock, CancelToken())
            seconds = clock.seconds(clock.now(), mesh_steps)
            if args.pipeline:
                glb = game_ready_glb(raw, str(device))
                seconds["pipeline"] = glb.timings_s["total"]
                seconds.update({f"pipeline.{k}": v for k, v in glb.timings_s.items()})
                seconds["end_to_end"] = seconds["total"] + seconds["pipeline"]
                results["glb_mb"] = round(len(glb.asset) / 2**20, 2)
                results["glb_faces"] = glb.faces
                # What the clean kept and how far the result strays: the figures behind the times.
                results["glb_quality"] = {key: glb.quality.get(key) for key in GLB_QUALITY}
            if device.type == "cuda":
                seconds["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            runs.append(seconds)
        timed = sorted(runs[1:] or runs, key=lambda r: r["total"])
        median = timed[(len(timed) - 1) // 2]  # one whole run, so its stages add up
        results["stages_s"] = {key: round(value, 3) for key, value in median.items()}
        results["totals_s"] = [round(r["total"], 3) for r in timed]
        if args.pipeline:
            ends = sorted(r["end_to_end"] for r in timed)
            results["end_to_end_s"] = {"median_s": round(ends[(len(ends) - 1) // 2], 3),
                                       "min_s": round(ends[0], 3), "max_s": round(ends[-1], 3),
                                       "runs": len(ends)}  # fmt: skip
        if args.profile and args.pipeline:  # where the warm pipeline's host time goes
            host_profile(lambda: game_ready_glb(raw, str(device)), args.profile)
        results["occupied_voxels"] = voxels[-1]
        results["faces"], results["vertices"] = len(raw.faces), len(raw.vertices)
        ply = raw.extra_files.get(GAUSSIAN_PLY)
        results["gaussians_ply_mb"] = round(len(ply) / 2**20, 2) if ply else None
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
