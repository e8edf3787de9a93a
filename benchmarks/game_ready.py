"""Benchmark: a game-ready asset from an ~800k-triangle mesh with a hidden inner shell.

The input is the geometry benchmark's blobby field (benchmarks/geometry_pipeline.py) marched
twice from one volume: the surface at level 0 and, inside it, the level -0.06 surface (a
second, fully enclosed shell, as a generated body under its clothes), with the analytic vertex
colour. ``run_pipeline`` makes 20k faces, 2048 px base colour + normal map, and LOD1..LOD3 in
one GLB; it runs once to load numba's caches, then ``--runs`` times. Printed and written to
``--out`` (default: a new file in benchmarks/runs/): wall time (median, and per stage), CPU time,
faces per LOD, faces removed as hidden, and the same input with ``keep_inner`` for comparison
(how much of LOD0 the hidden shell would take).

    .venv/backend/bin/python benchmarks/game_ready.py [--runs 3] [--resolution 345]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.geometry.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from backend.geometry.raw_asset import RawAsset  # noqa: E402
from benchmarks.blob_mesh import _blob_volume  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402

TARGET_FACES = 20_000
TEXTURE_SIZE = 2048
LODS = 3
INNER_LEVEL = -0.06  # the hidden shell: this far inside the surface, in field units


def make_input(resolution: int) -> tuple[RawAsset, int]:
    """The outer surface and a hidden inner shell from one volume; (asset, inner faces)."""
    from skimage.measure import marching_cubes

    from tests.support.analytic_meshes import analytic_color

    rng = np.random.default_rng(3)  # the geometry benchmark's blob, same seed
    centres = rng.uniform(-0.42, 0.42, (14, 3))
    radii = rng.uniform(0.2, 0.34, 14)
    directions = rng.normal(size=(24, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    owner = rng.integers(0, 14, 24)
    bumps = centres[owner] + directions * radii[owner, None]
    axis = np.linspace(-0.98, 0.98, resolution)
    volume = _blob_volume(axis, centres, radii, bumps, 0.07)
    spacing = (axis[1] - axis[0],) * 3
    parts = [marching_cubes(volume, level, spacing=spacing)[:2] for level in (0.0, INNER_LEVEL)]
    vertices = np.vstack([v for v, _ in parts]).astype(np.float32) + axis[0]
    faces = np.vstack([parts[0][1], parts[1][1] + len(parts[0][0])])
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices), name="blob")
    return raw, len(parts[1][1])


def run(raw: RawAsset, runs: int, keep_inner: bool, texture_size: int = TEXTURE_SIZE) -> dict:
    options = PipelineOptions(
        target_faces=TARGET_FACES, texture_size=texture_size, lods=LODS, keep_inner=keep_inner,
        measure_quality=False, name=raw.name,
    )  # fmt: skip
    started = time.perf_counter()
    run_pipeline(raw, options)  # loads (or compiles) the numba kernels
    first_s = time.perf_counter() - started
    totals, cpu, results = [], [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = run_pipeline(raw, options)
        totals.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        results.append(result)
    result = results[int(np.argsort(totals)[len(totals) // 2])]
    return {
        "keep_inner": keep_inner,
        "total_s_median": statistics.median(totals),
        "total_s_runs": totals,
        "cpu_s_median": statistics.median(cpu),
        "first_run_s_with_cache_load": first_s,
        "stages_s": {
            name: statistics.median(r.timings_s[name] for r in results) for name in result.timings_s
        },
        "lods": result.lods,
        "hidden_faces_removed": result.quality.get("inner_faces_removed", 0),
        "hidden_shells_removed": result.quality.get("inner_shells_removed", 0),
        "clean_report": {"pieces_after": result.quality["pieces"]},
        "lod0_faces_off_the_outer_surface": _faces_off_outer_surface(result.asset),
        "warnings": result.warnings,
        "asset_mb": len(result.asset) / 1e6,
    }


def _faces_off_outer_surface(glb: bytes) -> int:
    """LOD0 faces outside its largest piece (by bounding box): with ``keep_inner``, the faces
    the hidden shell takes from the budget."""
    import io

    import trimesh

    from backend.geometry import adjacency, clean

    scene = trimesh.load(io.BytesIO(glb), file_type="glb", process=False)
    mesh = next(m for name, m in scene.geometry.items() if name.endswith("LOD0"))
    kept, faces = clean.weld_vertices(np.asarray(mesh.vertices), np.asarray(mesh.faces), 1e-7)
    count, label = adjacency.face_components(faces, len(kept))
    if count == 1:
        return 0
    corners = np.asarray(mesh.vertices)[kept][faces].reshape(-1, 3)
    owner = np.repeat(label, 3)
    extent = [np.ptp(corners[owner == piece], axis=0).prod() for piece in range(count)]
    return int(np.count_nonzero(label != int(np.argmax(extent))))


def print_table(input_faces: int, inner_faces: int, rows: list[dict], texture_size: int) -> None:
    print(f"\ninput {input_faces} triangles (hidden inner shell: {inner_faces}) -> "
          f"{TARGET_FACES} faces + {LODS} LODs, {texture_size} px maps, one GLB")  # fmt: skip
    for row in rows:
        label = "keep_inner" if row["keep_inner"] else "default (inner shells removed)"
        print(f"\n{label}: {row['total_s_median']:.2f} s wall (median), "
              f"{row['cpu_s_median']:.2f} s CPU, {row['asset_mb']:.2f} MB, "
              f"hidden faces removed {row['hidden_faces_removed']}, "
              f"pieces in LOD0 {row['clean_report']['pieces_after']}, LOD0 faces off the outer "
              f"surface {row['lod0_faces_off_the_outer_surface']}")  # fmt: skip
        print(f"  {'stage':<24}{'median s':>10}")
        for name, seconds in row["stages_s"].items():
            print(f"  {name:<24}{seconds:>10.3f}")
        print("  " + ", ".join(f"{level['name']} {level['faces']}" for level in row["lods"]))
        for warning in row["warnings"]:
            print(f"  warning: {warning}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=345)  # ~800k triangles in all
    parser.add_argument("--skip-keep-inner", action="store_true")
    parser.add_argument("--texture-size", type=int, default=TEXTURE_SIZE)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: a new one in benchmarks/runs/)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    raw, inner_faces = make_input(args.resolution)
    print(f"input: {len(raw.faces)} triangles ({time.perf_counter() - started:.1f} s to make)")
    rows = [run(raw, args.runs, False, args.texture_size)]
    if not args.skip_keep_inner:
        rows.append(run(raw, args.runs, True, args.texture_size))
    print_table(len(raw.faces), inner_faces, rows, args.texture_size)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "numba_threads": numba.get_num_threads(),
        },
        "input": {
            "faces": len(raw.faces),
            "vertices": len(raw.vertices),
            "inner_shell_faces": inner_faces,
        },
        "target": {"faces": TARGET_FACES, "texture_size": args.texture_size, "lods": LODS},
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.out or default_out("game_ready")
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
