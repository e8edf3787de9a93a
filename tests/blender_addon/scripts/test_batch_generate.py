"""scripts/batch_generate.py end to end: a subprocess with the bpy module, a real backend."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "batch_generate.py"
FAST_ARGS = ["--param", "resolution=24", "--param", "steps=4", "--faces", "500",
             "--texture-size", "256"]


def run_batch(tmp_path: Path, zip_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"BLENDER_USER_RESOURCES": str(tmp_path / "blender-user"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--addon-zip", str(zip_path), *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )


def test_prompts_make_a_grid_in_a_saved_blend(fresh, backend, addon_zip, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("red torus\n\n# a comment\nblue cube\ngreen sphere\n")
    out = tmp_path / "scene.blend"
    result = run_batch(tmp_path, addon_zip, "--prompts", str(prompts), "--model", "procedural",
                       "--out", str(out), "--address", backend.address, "--size", "0.5",
                       *FAST_ARGS)
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    bpy.ops.wm.open_mainfile(filepath=str(out))
    objects = sorted((o for o in bpy.data.objects if "dreamcad_job_id" in o),
                     key=lambda o: o["dreamcad_prompt"])
    assert [o["dreamcad_prompt"] for o in objects] == ["blue cube", "green sphere", "red torus"]
    locations = {tuple(round(v, 4) for v in o.location) for o in objects}
    assert len(locations) == 3 and all(loc[2] == 0.0 for loc in locations)  # a grid on z = 0
    assert all(max(o.dimensions) == pytest.approx(0.5, rel=1e-4) for o in objects)
    gaps = sorted({abs(a[0] - b[0]) for a in locations for b in locations} - {0.0})
    assert gaps[0] == pytest.approx(0.75)  # spacing 1.5 x size 0.5


def test_image_folder_with_one_bad_image_fails_that_item_only(
    fresh, backend, addon_zip, tmp_path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a_good.png").write_bytes((REPO / "backend/assets/example.png").read_bytes())
    (images / "b_broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "images.blend"
    result = run_batch(tmp_path, addon_zip, "--images", str(images), "--model", "inflate",
                       "--out", str(out), "--address", backend.address, "--faces", "1000",
                       "--texture-size", "256")
    assert result.returncode == 1
    assert "1 of 2 failed" in result.stderr and "b_broken.png" in result.stderr
    assert "invalid_image" in result.stderr or "image format" in result.stderr  # backend reason
    bpy.ops.wm.open_mainfile(filepath=str(out))
    assert [o.name for o in bpy.data.objects if "dreamcad_job_id" in o] == ["a_good"]


def test_setup_errors_exit_2_with_the_reason(fresh, backend, addon_zip, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("cube\n")
    common = ["--prompts", str(prompts), "--out", str(tmp_path / "x.blend"),
              "--address", backend.address]
    unknown_model = run_batch(tmp_path, addon_zip, *common, "--model", "nope")
    assert unknown_model.returncode == 2 and "no model 'nope'" in unknown_model.stderr
    unknown_param = run_batch(tmp_path, addon_zip, *common, "--model", "procedural",
                              "--param", "colour=1")
    assert unknown_param.returncode == 2 and "has no parameter 'colour'" in unknown_param.stderr
    no_backend = run_batch(tmp_path, addon_zip, "--prompts", str(prompts), "--model", "x",
                           "--out", str(tmp_path / "x.blend"), "--address",
                           "tcp://127.0.0.1:9", "--connect-timeout", "1")
    assert no_backend.returncode == 2 and "no backend answers" in no_backend.stderr
    assert not (tmp_path / "x.blend").exists()


def test_meshes_folder_optimized_into_the_scene(fresh, backend, addon_zip, tmp_path) -> None:
    """--meshes: each GLB optimized with LODs, imported at its grid cell with its job id; a
    broken file fails alone with the backend's code."""
    from tests.support.backend_process import backend_python

    meshes = tmp_path / "meshes"
    meshes.mkdir()
    # trimesh lives in the backend's environment, not Blender's: the GLB is written there.
    write = ("import sys; from tests.support.mesh_glbs import textured_shells; "
             "open(sys.argv[1], 'wb').write(textured_shells(rows=16)[0])")
    subprocess.run([backend_python(), "-c", write, str(meshes / "a_ball.glb")], cwd=REPO,
                   check=True, timeout=120)
    (meshes / "b_broken.glb").write_bytes(b"glTF not really")
    out = tmp_path / "meshes.blend"
    result = run_batch(tmp_path, addon_zip, "--meshes", str(meshes), "--task", "optimize",
                       "--out", str(out), "--address", backend.address, "--faces", "500",
                       "--texture-size", "256", "--lods", "1")
    assert result.returncode == 1, result.stderr
    assert "1 of 2 failed" in result.stderr and "b_broken.glb" in result.stderr
    assert "invalid_mesh" in result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    tagged = [o for o in bpy.data.objects if "dreamcad_job_id" in o]
    assert {o["dreamcad_source_mesh"] for o in tagged} == {"a_ball.glb"}
    assert sorted(o.name for o in tagged if o.type == "MESH") == ["a_ball_LOD0", "a_ball_LOD1"]


def test_compare_makes_one_row_per_input_and_a_table(fresh, plugin_backend, addon_zip,
                                                     tmp_path) -> None:  # fmt: skip
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("red torus\nblue cube\n")
    out = tmp_path / "compare.blend"
    result = run_batch(tmp_path, addon_zip, "--prompts", str(prompts),
                       "--compare", "procedural,procedural-tall", "--out", str(out),
                       "--results", str(tmp_path / "glb"), "--address", plugin_backend.address,
                       *FAST_ARGS)  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = json.loads(out.with_suffix(".compare.json").read_text())
    assert [(r["input"], r["model"]) for r in table] == [
        ("red torus", "procedural"), ("red torus", "procedural-tall"),
        ("blue cube", "procedural"), ("blue cube", "procedural-tall")]
    for row in table:
        assert row["state"] == "succeeded" and row["faces"] >= 500 and row["seconds"] > 0
        assert row["peak_vram_mb"] is None and not row["error"]
        assert Path(row["glb"]).is_file() and Path(row["glb"]).parent == tmp_path / "glb"
    with out.with_suffix(".compare.csv").open() as stream:
        assert [r["job_id"] for r in csv.DictReader(stream)] == [r["job_id"] for r in table]
    bpy.ops.wm.open_mainfile(filepath=str(out))
    rows = {}
    for obj in bpy.data.collections["Dream CAD Compare"].objects:
        if "dreamcad_job_id" in obj:
            rows.setdefault(round(obj.location.y, 4), []).append(obj["dreamcad_compare_model"])
    assert len(rows) == 2 and all(sorted(m) == ["procedural", "procedural-tall"]
                                  for m in rows.values())  # fmt: skip


def test_compare_needs_two_different_models(fresh, addon_zip, tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("cube\n")
    result = run_batch(tmp_path, addon_zip, "--prompts", str(prompts), "--compare",
                       "procedural,procedural", "--out", str(tmp_path / "x.blend"))
    assert result.returncode == 2 and "two or more different models" in result.stderr
