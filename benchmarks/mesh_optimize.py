"""Benchmark: task ``optimize`` of an artist's ~800k-triangle textured GLB, and a re-optimize.

The mesh is game_ready.py's blob with its hidden inner shell (~800k triangles in all), given a
planar UV projection and a 2048 px texture (a checker with noise), written as the GLB an artist
would send. A real backend (``serve --device cpu``, the numba kernels from setup's cache) gets
it through a real client: ``optimize`` to 20k faces, 2048 px maps, LOD1..LOD3; then
``optimize`` with ``source_job`` (no mesh sent, the kept raw output read) to 10k faces and
3 LODs. Reported: wall time from submit to result (what the artist waits), the backend's
per-stage timings, the kept raw output's size, faces per LOD. Run it with the cores you want
measured, e.g. ``taskset -c 0,1`` for 2 cores (NUMBA_NUM_THREADS follows the cores given).

    taskset -c 0,1 .venv/backend/bin/python benchmarks/mesh_optimize.py --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.outputs import default_out  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))

from game_ready import make_input  # noqa: E402

from shared_protocol.client import BackendClient  # noqa: E402
from shared_protocol.messages import (  # noqa: E402
    JobFailedEvent,
    MeshInput,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess  # noqa: E402


def textured_glb(resolution: int, texture_size: int) -> tuple[bytes, int, int]:
    """(GLB bytes, triangles, hidden triangles): the blob with planar UVs and a texture."""
    import trimesh
    from PIL import Image

    raw, inner_faces = make_input(resolution)
    vertices = raw.vertices.astype(np.float64)
    low, high = vertices.min(0), vertices.max(0)
    uv = (vertices[:, :2] - low[:2]) / (high[:2] - low[:2])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:texture_size, :texture_size]
    checker = ((yy // 128 + xx // 128) % 2).astype(np.float32)
    pixels = np.stack([200 * checker + 30, 120 + 60 * (1 - checker), 90 * checker + 40], -1)
    pixels += rng.normal(0, 8, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    mesh = trimesh.Trimesh(vertices, raw.faces, process=False)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh.export(file_type="glb"), len(raw.faces), inner_faces


def submit_and_wait(
    client: BackendClient, request: SubmitRequest
) -> tuple[str, ResultEvent, float]:
    started = time.perf_counter()
    reply = client.request(request, timeout_s=120)
    assert isinstance(reply, SubmitReply)
    while True:
        envelope = client.receive(timeout_s=1.0)
        message = envelope and envelope.message
        if isinstance(message, JobFailedEvent) and message.job_id == reply.job_id:
            raise RuntimeError(message.error.describe())
        if isinstance(message, ResultEvent) and message.job_id == reply.job_id:
            return reply.job_id, message, time.perf_counter() - started


def wait_for_warmup(backend: BackendProcess, timeout_s: float = 300) -> None:
    """As a real ``serve`` does at start: the geometry kernels compiled or loaded first, so the
    first job's figure is not the JIT's."""
    deadline = time.monotonic() + timeout_s
    while "geometry kernels ready" not in backend.log_path.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError("the backend's warm-up did not finish")
        time.sleep(0.5)


def row(label: str, result: ResultEvent, wall_s: float) -> dict:
    manifest = result.manifest
    return {
        "case": label,
        "wall_s": round(wall_s, 2),
        "faces": manifest.faces,
        "lods": [lod.faces for lod in manifest.lods],
        "asset_mb": round(len(result.asset) / 2**20, 2),
        "timings_s": manifest.timings_s,
        "inner_faces_removed": manifest.quality.get("inner_faces_removed", 0),
        "raw_output_mb": manifest.quality.get("raw_output_mb"),
    }


def table(report: dict) -> str:
    """The report as a markdown table (what the closing note quotes)."""
    lines = [
        f"Input: {report['input_triangles']} triangles ({report['hidden_triangles']} hidden), "
        f"{report['texture_size']} px texture, GLB {report['input_glb_mb']} MB; "
        f"{report['cores']} cores; kept raw output {report['raw_output_mb']} MB.",
        "",
        "| case | wall s | clean s | decimate s | bake s | faces per LOD |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for item in report["rows"]:
        timings = item["timings_s"]
        lines.append(
            f"| {item['case']} | {item['wall_s']:.2f} | {timings['pipeline.clean']:.2f} | "
            f"{timings['pipeline.decimate']:.2f} | {timings['pipeline.bake']:.2f} | "
            f"{', '.join(map(str, item['lods']))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=345)  # ~800k triangles in all
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: a new one in benchmarks/runs/)")
    args = parser.parse_args(argv)

    glb, triangles, inner = textured_glb(args.resolution, args.texture_size)
    print(f"input: {triangles} triangles ({inner} hidden), GLB {len(glb) / 2**20:.1f} MB")
    rows = []
    with (
        tempfile.TemporaryDirectory() as data,
        BackendProcess(Path(data), warm_up=True) as backend,
        BackendClient(backend.address) as client,
    ):
        wait_for_warmup(backend)
        first = SubmitRequest(
            model="mesh-optimize", task="optimize", mesh=MeshInput(data=glb, name="Blob"),
            target_faces=20_000, texture_size=args.texture_size, lods=3,
        )  # fmt: skip
        job_id, result, wall = submit_and_wait(client, first)
        rows.append(row("optimize 800k textured -> 20k + 3 LODs", result, wall))
        again = SubmitRequest(
            model="mesh-optimize", task="optimize", source_job=job_id,
            target_faces=10_000, texture_size=args.texture_size, lods=3,
        )  # fmt: skip
        _, result, wall = submit_and_wait(client, again)
        rows.append(row("re-optimize (source_job) -> 10k + 3 LODs", result, wall))
        _, result, wall = submit_and_wait(client, first)
        rows.append(row("optimize again (every kernel used once)", result, wall))
        raw_size = (Path(data) / "jobs" / job_id / "raw.npz").stat().st_size
    print(f"\n{'case':<44} {'wall s':>7} {'faces':>7}  LODs")
    for item in rows:
        print(f"{item['case']:<44} {item['wall_s']:>7.2f} {item['faces']:>7}  {item['lods']}")
    print(f"kept raw output: {raw_size / 2**20:.1f} MB for {triangles} triangles")
    report = {
        "benchmark": "mesh_optimize",
        "input_triangles": triangles,
        "hidden_triangles": inner,
        "input_glb_mb": round(len(glb) / 2**20, 2),
        "raw_output_mb": round(raw_size / 2**20, 2),
        "texture_size": args.texture_size,
        "cores": len(os.sched_getaffinity(0)),
        "cpu": platform.processor() or platform.machine(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.out or default_out("mesh_optimize")
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(table(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
