"""The product's own path, timed: ``dreamcad-backend serve`` + jobs over ZeroMQ, model warm.

What a user waits for, not a stage in isolation: a real ``serve`` process on a loopback port
(its CLI, its default settings, kernel warm-up included) with a weights folder of seeded random
weights in the official layouts (full size, or the tiny test configs with ``--tiny``), and our
protocol client submitting one image job at a time, as the add-on does. Per model: one warm-up
job (it loads the model; the first also meets the server's start-up kernel warm-up, which
gives way to it), then ``--runs`` timed jobs, after that warm-up ended (``kernels_ready_s``).
Each job's wall time runs from sending the submit request to the result event with the GLB
bytes in hand; beside it the manifest's stage times (load, generate = the model, pipeline.* =
post-processing, pipeline.export = GLB writing), the rest as overhead (queue, progress,
transfer), the peak VRAM the service reports and when each progress stage was first seen.
``mesh-optimize`` (no model: a dense sphere made game-ready) is the control: the service's cost
without a network.

The job parameters are the models' defaults except the surface level, which random weights
need measured (product_weights.py). Requests use the protocol's default face budget and texture
size (``--faces`` / ``--texture-size`` to change; ``--tiny`` uses small ones).

    .venv/backend/bin/python benchmarks/product_path.py --device cuda:0 --runs 5 --out F.json
    .venv/backend/bin/python benchmarks/product_path.py --tiny --device cpu --runs 5
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.bench.inputs import _glb, uv_sphere  # noqa: E402
from benchmarks.common import disc_image  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402
from shared_protocol.client import BackendClient, error_from_wire  # noqa: E402
from shared_protocol.messages import (  # noqa: E402
    DEFAULT_FACES,
    DEFAULT_TEXTURE_SIZE,
    OPTIMIZE_MODEL,
    FetchReply,
    FetchRequest,
    ImageInput,
    JobFailedEvent,
    MeshInput,
    ProgressEvent,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess  # noqa: E402

MODELS = ("triposr", "sf3d", OPTIMIZE_MODEL)
JOB_TIMEOUT_S = 600.0
SEED = 0


def png(rgba: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgba).save(out, format="PNG")
    return out.getvalue()


def request_for(model: str, args: argparse.Namespace, parameters: dict, image: bytes,
                mesh: bytes) -> SubmitRequest:  # fmt: skip
    common = dict(seed=SEED, target_faces=args.faces, texture_size=args.texture_size, watch=True)
    if model == OPTIMIZE_MODEL:
        return SubmitRequest(model=model, task="optimize", mesh=MeshInput(mesh, name="sphere"),
                             **common)  # fmt: skip
    return SubmitRequest(model=model, task="image", images=(ImageInput(image),),
                         parameters=parameters, **common)  # fmt: skip


def run_job(client: BackendClient, request: SubmitRequest) -> dict[str, Any]:
    """Submit, follow to the result event; the job's times as the client and service saw them."""
    started = time.perf_counter()
    reply = client.request(request, timeout_s=60.0)
    assert isinstance(reply, SubmitReply), reply
    queued_s = time.perf_counter() - started
    first_seen: dict[str, float] = {}
    deadline = started + JOB_TIMEOUT_S
    while True:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {reply.job_id} did not finish in {JOB_TIMEOUT_S} s")
        envelope = client.receive(timeout_s=1.0)
        if envelope is None:
            continue
        event = envelope.message
        if getattr(event, "job_id", None) != reply.job_id:
            continue
        now = time.perf_counter() - started
        if isinstance(event, ProgressEvent):
            first_seen.setdefault(event.progress.stage, round(now, 4))
        elif isinstance(event, JobFailedEvent):
            raise error_from_wire(event.error)
        elif isinstance(event, ResultEvent):
            wall_s = now
            break
    # What `dreamcad-backend fetch` (or a client that did not watch) pays again for the bytes.
    before = time.perf_counter()
    fetched = client.request(FetchRequest(job_id=reply.job_id), timeout_s=60.0)
    assert isinstance(fetched, FetchReply) and fetched.asset == event.asset
    manifest = event.manifest
    return {
        "job_id": reply.job_id,
        "wall_s": round(wall_s, 4),
        "submit_reply_s": round(queued_s, 4),
        "fetch_again_s": round(time.perf_counter() - before, 4),
        "asset_bytes": len(event.asset),
        "asset_sha256_16": hashlib.sha256(event.asset).hexdigest()[:16],
        "faces": manifest.faces,
        "timings_s": dict(manifest.timings_s),
        "peak_vram_mb": manifest.peak_vram_mb,
        "device": manifest.device,
        "first_seen_s": first_seen,
        **split(wall_s, manifest.timings_s),
    }


def split(wall_s: float, timings: dict[str, float]) -> dict[str, float]:
    """Wall time split: model (load + generate), post-processing (pipeline stages, GLB export
    among them), and the rest (queue, keep_raw, progress, transfer)."""
    model = timings.get("load", 0.0) + timings.get("generate", 0.0)
    # "pipeline.clean.inner_shells" is part of "pipeline.clean": count top-level stages only.
    stages = {k: v for k, v in timings.items() if k.startswith("pipeline.") and k.count(".") == 1}
    post = sum(stages.values())
    return {
        "model_s": round(model, 4),
        "postprocess_s": round(post, 4),
        "glb_s": round(timings.get("pipeline.export", 0.0), 4),
        "overhead_s": round(wall_s - model - post, 4),
    }


def summarise(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of each figure over the timed jobs."""
    keys = ("wall_s", "model_s", "postprocess_s", "glb_s", "overhead_s")
    stage_keys = sorted({k for job in jobs for k in job["timings_s"]})
    out: dict[str, Any] = {}
    for key in keys:
        values = [job[key] for job in jobs]
        out[key] = _spread(values)
    out["stages_s"] = {k: _spread([job["timings_s"].get(k, 0.0) for job in jobs])
                       for k in stage_keys}  # fmt: skip
    vram = [job["peak_vram_mb"] for job in jobs if job["peak_vram_mb"] is not None]
    out["peak_vram_mb"] = max(vram) if vram else None
    out["faces"] = sorted({job["faces"] for job in jobs})
    # Same request, same seed: the same GLB is expected (1); more means a run-to-run drift.
    out["distinct_assets"] = len({job["asset_sha256_16"] for job in jobs})
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}  # fmt: skip


def bench_model(client: BackendClient, request: SubmitRequest, runs: int,
                before_runs: Callable[[], None]) -> dict[str, Any]:  # fmt: skip
    warmup = run_job(client, request)
    before_runs()
    jobs = [run_job(client, request) for _ in range(runs)]
    return {"warmup": warmup, "jobs": jobs, "summary": summarise(jobs)}


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['device']} ({report['device_name']}), {report['runs']} warm jobs each, "
          f"median (min-max) seconds; the server's kernel warm-up took "
          f"{report.get('kernels_ready_s')} s")  # fmt: skip
    header = f"{'model':<15}{'wall':>22}{'model':>9}{'post':>9}{'GLB':>8}{'other':>8}"
    print(header + f"{'VRAM MB':>9}{'faces':>8}{'1st job':>9}{'GLBs':>6}")
    for name, entry in report["models"].items():
        if "error" in entry:
            print(f"{name:<15}failed: {entry['error']}")
            continue
        s = entry["summary"]
        wall = s["wall_s"]
        cell = f"{wall['median']:.3f} ({wall['min']:.3f}-{wall['max']:.3f})"
        vram = "-" if s["peak_vram_mb"] is None else f"{s['peak_vram_mb']:.0f}"
        print(f"{name:<15}{cell:>22}{s['model_s']['median']:9.3f}{s['postprocess_s']['median']:9.3f}"
              f"{s['glb_s']['median']:8.3f}{s['overhead_s']['median']:8.3f}{vram:>9}"
              f"{s['faces'][-1]:>8}{entry['warmup']['wall_s']:9.2f}"
              f"{s['distinct_assets']:>6}")  # fmt: skip
        # each job's wall beside the pipeline's GC pauses, time off the CPU and the other
        # threads' CPU (stall_meter.py): a slow job among fast ones says whether it waited or
        # worked, and whether something else in the process was busy meanwhile
        print(" " * 15 + "jobs (wall / gc / waited / other threads s): " + ", ".join(
            "/".join(f"{value:.2f}" for value in (
                job["wall_s"], *(job["timings_s"].get(f"stalls.{key}", float("nan"))
                                 for key in ("gc_s", "waited_s", "other_threads_cpu_s"))))
            for job in entry["jobs"]))  # fmt: skip


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs (CPU smoke run)")
    parser.add_argument("--device", default="cuda:0", help="the service's device (cpu, cuda:0)")
    parser.add_argument("--runs", type=int, default=5, help="timed jobs per model (>= 5)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--faces", type=int, help=f"default {DEFAULT_FACES} (tiny: 1000)")
    parser.add_argument("--texture-size", type=int,
                        help=f"default {DEFAULT_TEXTURE_SIZE} (tiny: 256)")  # fmt: skip
    parser.add_argument("--weights-dir", type=Path,
                        help="keep the random weights here and reuse them (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="JSON (default: a new file in benchmarks/runs/)")
    args = parser.parse_args(argv)
    args.faces = args.faces or (1000 if args.tiny else DEFAULT_FACES)
    args.texture_size = args.texture_size or (256 if args.tiny else DEFAULT_TEXTURE_SIZE)
    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as scratch:
        weights_dir = args.weights_dir or Path(scratch) / "weights"
        report = run(args, models, weights_dir, Path(scratch))
    print_table(report)
    out = args.out or default_out("product_path_tiny" if args.tiny else "product_path")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if all("error" not in m for m in report["models"].values()) else 1


def run(args: argparse.Namespace, models: list[str], weights_dir: Path,
        scratch: Path) -> dict[str, Any]:  # fmt: skip
    import torch

    from benchmarks import product_weights

    rgba = disc_image(128 if args.tiny else 512)
    image = png(rgba)
    mesh = _glb(*uv_sphere(40 if args.tiny else 400))
    prepared: dict[str, dict[str, Any]] = {}
    for model in models:
        if model != OPTIMIZE_MODEL:
            print(f"weights: {model} ({'tiny' if args.tiny else 'full size'}) ...", flush=True)
            prepared[model] = product_weights.prepare(
                model, weights_dir, args.tiny, torch.device(args.device), rgba
            )
    weights = [f"--weights={m}={p['path']}" for m, p in prepared.items()]
    # What setup does once per install (scripts/setup_env.sh: `dreamcad-backend warmup`, with
    # `--device cuda` on a GPU box): the kernels compiled into numba's and inductor's on-disk
    # caches. Without it the server's start-up warm-up and the first job compile them (numba
    # ~70 s cold on a GPU box, the decimator's regions ~28 s): not what a set-up install does.
    from backend.geometry.warmup import warm_up

    print("kernels: warm-up as setup does ...", flush=True)
    started = time.perf_counter()
    warm_up(devices=[args.device] if args.device.startswith("cuda") else [])
    setup_warmup_s = round(time.perf_counter() - started, 2)
    backend = BackendProcess(scratch / "data", *weights, warm_up=True, device=args.device,
                             log_path=scratch / "backend.log")  # fmt: skip
    started = time.perf_counter()
    backend.start(wait_s=600)
    report: dict[str, Any] = {
        "benchmark": "product_path",
        "tiny": args.tiny,
        "device": args.device,
        "device_name": device_name(args.device),
        "runs": args.runs,
        "request": {"faces": args.faces, "texture_size": args.texture_size, "seed": SEED},
        "setup_warmup_s": setup_warmup_s,
        "server_start_s": round(time.perf_counter() - started, 2),
        "weights": prepared,
        "models": {},
    }

    def kernels_ready() -> None:
        """The timed jobs measure a warmed service: the server's start-up warm-up gives way to
        jobs, so it may still be compiling after the first one. Wait for it, note when."""
        if "kernels_ready_s" not in report:
            report["kernels_ready_s"] = wait_for_kernels(backend, 900)

    try:
        with BackendClient(backend.address) as client:
            for model in models:
                parameters = prepared.get(model, {}).get("parameters", {})
                request = request_for(model, args, parameters, image, mesh)
                print(f"{model}: warm-up + {args.runs} jobs ...", flush=True)
                try:
                    report["models"][model] = bench_model(client, request, args.runs,
                                                          kernels_ready)  # fmt: skip
                except Exception as error:  # keep the other models' figures
                    report["models"][model] = {"error": f"{type(error).__name__}: {error}"}
    finally:
        backend.stop()
        report["server_log_tail"] = backend.log()[-4000:]
    return report


def wait_for_kernels(backend: BackendProcess, timeout_s: float) -> float | None:
    """The seconds the server's start-up warm-up took, once its log says it ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        log = backend.log()
        if found := re.search(r"geometry kernels ready in ([0-9.]+) s", log):
            return float(found.group(1))
        if "geometry warm-up failed" in log:
            return None
        time.sleep(0.5)
    raise TimeoutError(f"the server's kernel warm-up did not end in {timeout_s:g} s")


if __name__ == "__main__":
    raise SystemExit(main())
