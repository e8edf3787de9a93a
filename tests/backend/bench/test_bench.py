"""`dreamcad-backend bench` on the built-in models (CPU, seconds), and its figures and flags."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from backend.bench import inputs, metrics, report
from tests.support.backend_process import REPO


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "backend.cli",
            "bench",
            "--device",
            "cpu",
            "--faces",
            "1500",
            "--texture-size",
            "256",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def first_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = bench("--models", "procedural,mesh-optimize", "--seeds", "0,1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_bench_runs_every_input_and_seed_and_writes_json_and_plots(first_bench):
    out, result = first_bench
    doc = json.loads((out / "bench.json").read_text())
    keys = {run["key"] for run in doc["runs"]}
    prompts = {f"procedural/text/{name}/seed{s}" for name in inputs.PROMPTS for s in (0, 1)}
    meshes = {
        f"mesh-optimize/optimize/{name}/seed{s}" for name in ("sphere", "nested") for s in (0, 1)
    }
    assert keys == prompts | meshes
    for run in doc["runs"]:
        assert not run["error"], run["error"]
        assert abs(run["faces"] - 1500) <= 0.02 * 1500
        assert run["stages_s"]["pipeline.decimate"] > 0 and "pipeline.bake" in run["stages_s"]
        figures = run["figures"]
        assert figures["watertight"] is True and figures["pieces"] == 1
        assert figures["non_manifold_edges"] == 0 and figures["inner_shell_faces_left"] == 0
        assert 0.2 < figures["uv_utilization"] <= 1.0
        assert 1.0 <= figures["texel_density_spread"] < 3.0
    nested = next(r for r in doc["runs"] if r["key"] == "mesh-optimize/optimize/nested/seed0")
    assert nested["figures"]["inner_faces_removed"] > 1000  # the hidden sphere was found
    assert (out / "bench_stages.png").stat().st_size > 1000
    assert "procedural/text/stool/seed0" in result.stdout


def test_compare_to_flags_a_slower_stage_and_a_worse_figure(first_bench, tmp_path):
    out, _ = first_bench
    old = json.loads((out / "bench.json").read_text())
    assert report.compare(old, old) == []
    faster = json.loads(json.dumps(old))
    for run in faster["runs"]:
        run["stages_s"] = {k: v / 3 for k, v in run["stages_s"].items()}  # "before": 3x faster
        if run["key"] == "mesh-optimize/optimize/sphere/seed0":
            run["figures"]["texel_density_spread"] = 1.0  # before: perfectly even
    path = tmp_path / "old.json"
    path.write_text(json.dumps(faster))
    result = bench(
        "--models",
        "mesh-optimize",
        "--out",
        str(tmp_path / "new"),
        "--compare-to",
        str(path),
        "--no-warmup",
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "stage pipeline.decimate" in result.stdout
    assert "mesh-optimize/optimize/sphere/seed0: texel_density_spread" in result.stdout


def test_compare_flags_lost_watertightness_and_new_failures_not_better_figures():
    run = {
        "key": "m/text/a/seed0",
        "error": "",
        "faces": 100,
        "stages_s": {"generate": 1.0},
        "figures": {"watertight": True, "pieces": 1, "uv_utilization": 0.6},
    }
    worse = {**run, "figures": {"watertight": False, "pieces": 3, "uv_utilization": 0.5}}
    better = {
        **run,
        "stages_s": {"generate": 0.5},
        "figures": {"watertight": True, "pieces": 1, "uv_utilization": 0.7},
    }
    failed = {**run, "error": "RuntimeError: boom"}
    flags = report.compare({"runs": [run]}, {"runs": [worse]})
    assert len(flags) == 3 and all("worse" in flag for flag in flags)
    assert report.compare({"runs": [run]}, {"runs": [better]}) == []
    assert "failed" in report.compare({"runs": [run]}, {"runs": [failed]})[0]
    tiny = {**run, "stages_s": {"generate": 0.001}}
    assert (
        report.compare({"runs": [tiny]}, {"runs": [{**tiny, "stages_s": {"generate": 0.004}}]})
        == []
    )


def test_texel_density_spread_is_one_when_even_and_grows_with_uneven_uvs():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    even = vertices[:, :2] * 0.5
    assert metrics.texel_density_spread(vertices, faces, even) == pytest.approx(1.0)
    uneven = even.copy()
    uneven[3] = [0.0, 2.0]  # face 1 gets 4x the UV area: twice the texels per unit length
    assert metrics.texel_density_spread(vertices, faces, uneven) == pytest.approx(2.0)


def test_asset_figures_find_the_hidden_shell_of_the_nested_input():
    figures = metrics.asset_figures(inputs.nested_shells_mesh())
    inner_faces = 4 * 24 * 24 - 4 * 24
    assert figures["inner_shell_faces_left"] == inner_faces
    assert metrics.asset_figures(inputs.sphere_mesh())["inner_shell_faces_left"] == 0
