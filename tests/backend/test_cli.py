"""`dreamcad-backend` as a user runs it: real subprocesses and sockets, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.jobs.queue import JobQueue
from backend.jobs.store import JobStore
from backend.settings import Settings
from tests.backend.jobs.test_queue import submit
from tests.support.backend_process import REPO, BackendProcess, free_port

pytestmark = pytest.mark.slow


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_models_json_lists_builtin_models() -> None:
    result = cli("models", "--json")
    assert result.returncode == 0, result.stderr
    models = {m["id"]: m for m in json.loads(result.stdout)}
    assert models["procedural"]["weights_present"] and models["procedural"]["license"] == "MIT"


def test_doctor_reports_each_check(tmp_path) -> None:
    result = cli("doctor", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "torch", "gpu", "disk", "weights:procedural"):
        assert name in result.stdout


def test_refuses_non_loopback_without_keys(tmp_path) -> None:
    result = cli(
        "serve",
        "--address",
        f"tcp://0.0.0.0:{free_port()}",
        "--data-dir",
        str(tmp_path),
        timeout=60,
    )
    assert result.returncode == 2
    assert "dreamcad-backend keys" in result.stderr


def test_curve_keys_authenticate_clients(tmp_path) -> None:
    keys = tmp_path / "keys"
    made = cli("keys", "--dir", str(keys))
    assert made.returncode == 0, made.stderr
    port = free_port()
    backend = BackendProcess(tmp_path / "data", "--curve-keys", str(keys), port=port)
    backend.address = f"tcp://0.0.0.0:{port}"
    with backend:
        address = f"tcp://127.0.0.1:{port}"
        allowed = cli("ping", "--address", address, "--curve-keys", str(keys))
        assert allowed.returncode == 0, allowed.stderr
        assert "pong" in allowed.stdout
        stranger = cli("ping", "--address", address, "--timeout", "2")
        assert stranger.returncode == 1 and "timeout" in stranger.stderr


def test_client_commands_against_a_running_backend(tmp_path) -> None:
    with BackendProcess(tmp_path / "data", warm_up=True) as backend:
        address = ("--address", backend.address)
        out = tmp_path / "torus.glb"
        submitted = cli(
            "submit",
            "--model",
            "procedural",
            "--prompt",
            "a green torus",
            "--param",
            "resolution=48",
            "--faces",
            "1500",
            "--texture-size",
            "256",
            "--wait",
            "-o",
            str(out),
            *address,
        )
        assert submitted.returncode == 0, submitted.stderr
        assert out.read_bytes()[:4] == b"glTF"
        job_id = submitted.stdout.split()[1]

        status = cli("status", job_id, *address)
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "succeeded"
        fetched = cli("fetch", job_id, "-o", str(tmp_path / "again.glb"), *address)
        assert fetched.returncode == 0
        assert (tmp_path / "again.glb").read_bytes() == out.read_bytes()

        missing = cli("status", "nope", *address)
        assert missing.returncode == 1 and "unknown_job" in missing.stderr
        bad = cli("submit", "--model", "nope", "--prompt", "x", *address)
        assert bad.returncode == 1 and "unknown_model" in bad.stderr
        deadline = time.monotonic() + 60  # serve compiles the geometry kernels at start
        while "geometry kernels ready" not in backend.log_path.read_text():
            assert time.monotonic() < deadline, backend.log_path.read_text()[-2000:]
            time.sleep(0.2)

        listed = cli("jobs", "list", "--data-dir", str(backend.data_dir))
        assert job_id in listed.stdout and "succeeded" in listed.stdout


def test_jobs_cancel_with_no_backend_goes_through_the_queue(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    queue = JobQueue(JobStore(settings.db_path, settings.jobs_dir), lambda *_: None)
    job_id = submit(queue)
    offline = ("--data-dir", str(tmp_path), "--address", f"tcp://127.0.0.1:{free_port()}",
               "--timeout", "0.5")

    cancelled = cli("jobs", "cancel", job_id, *offline)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"{job_id}: cancelled")
    record = queue.store.get(job_id)
    assert record.state == "cancelled" and record.finished_at is not None  # retention sees it

    again = cli("jobs", "cancel", job_id, *offline)
    assert again.returncode == 1 and "job_finished" in again.stderr
    unknown = cli("jobs", "cancel", "nope", *offline)
    assert unknown.returncode == 1 and "unknown_job" in unknown.stderr
    for result in (again, unknown):  # hints name commands, not protocol messages
        assert "`dreamcad-backend jobs list`" in result.stderr
        assert "_request" not in result.stderr and "(field" not in result.stderr


def test_warmup_refuses_a_device_before_compiling_anything() -> None:
    result = cli("warmup", "--device", "gpu7")
    assert result.returncode != 0
    assert "'gpu7' is not a torch device name" in result.stderr
    assert "kernels ready" not in result.stdout and "vertex colours" not in result.stdout


def test_unreachable_backend_is_a_clear_error() -> None:
    result = cli("ping", "--address", f"tcp://127.0.0.1:{free_port()}", "--timeout", "1")
    assert result.returncode == 1
    assert "timeout" in result.stderr and "dreamcad-backend ping" in result.stderr


def test_generate_standalone_writes_a_glb(tmp_path: Path) -> None:
    out = tmp_path / "cube.glb"
    result = cli(
        "generate",
        "--model",
        "procedural",
        "--prompt",
        "a blue cube",
        "--param",
        "resolution=48",
        "--faces",
        "1000",
        "--texture-size",
        "256",
        "--seed",
        "3",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"glTF"
    assert "seed 3" in result.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--faces", "100"), "body.target_faces"),  # the protocol's 500..500 000
        (("--texture-size", "300"), "body.texture_size"),
        (("--param", "resolution=9999"), "body.parameters.resolution"),
        (("--param", "nope=1"), "body.parameters.nope"),
    ],
)
def test_generate_refuses_what_a_submit_would(tmp_path: Path, args, field) -> None:
    """`generate` goes through the server's admission: same refusals, same field names."""
    result = cli("generate", "--model", "procedural", "--prompt", "a cube", *args,
                 "-o", str(tmp_path / "x.glb"))  # fmt: skip
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert not (tmp_path / "x.glb").exists()


def test_postprocess_game_ready_options(tmp_path: Path) -> None:
    """--lods writes the levels and their faces; hidden shells go unless --keep-inner."""
    import trimesh

    from tests.support import shell_meshes as shapes

    vertices, faces = shapes.combine(shapes.sphere(1.0, rows=40), shapes.sphere(0.5, rows=40))
    source = tmp_path / "nested.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(source)
    out = tmp_path / "nested.glb"
    common = ("postprocess", str(source), "--faces", "1000", "--texture-size", "256")
    result = cli(*common, "--lods", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"removed {len(faces) // 2} hidden faces (1 shells)" in result.stdout
    manifest = json.loads(out.with_name("nested.glb.json").read_text())
    names = [level["name"] for level in manifest["lods"]]
    assert names == ["nested_LOD0", "nested_LOD1", "nested_LOD2"]
    assert names[1] in result.stdout and manifest["quality"]["pieces"] == 1
    kept = cli(*common, "--keep-inner", "-o", str(tmp_path / "kept.glb"))
    assert kept.returncode == 0 and "hidden" not in kept.stdout
    refused = cli(*common, "--lods", "9", "-o", str(tmp_path / "x.glb"))
    assert refused.returncode != 0 and "lods" in refused.stderr


def test_mesh_in_generate_submit_and_source_job(tmp_path: Path) -> None:
    """--mesh optimizes (model and task implied) here and on a backend; --source-job reads the
    finished job's raw output from the local store (--data-dir), no model run."""
    from tests.support.mesh_glbs import textured_shells

    mesh = tmp_path / "ball.glb"
    mesh.write_bytes(textured_shells()[0])
    small = ("--faces", "800", "--texture-size", "256")
    here = cli("generate", "--mesh", str(mesh), *small, "--lods", "1", "--device", "cpu",
               "-o", str(tmp_path / "here.glb"))  # fmt: skip
    assert here.returncode == 0, here.stderr
    assert (tmp_path / "here.glb").read_bytes()[:4] == b"glTF"
    with BackendProcess(tmp_path / "data") as backend:
        submitted = cli("submit", "--mesh", str(mesh), *small, "--wait", "-o",
                        str(tmp_path / "there.glb"), "--address", backend.address)  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.split()[1]
        again = cli("generate", "--source-job", job_id, "--faces", "600", "--texture-size",
                    "256", "--device", "cpu", "--data-dir", str(backend.data_dir),
                    "-o", str(tmp_path / "again.glb"))  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "wrote" in again.stdout and (tmp_path / "again.glb").stat().st_size > 0
        missing = cli("generate", "--source-job", "nope", "--data-dir", str(backend.data_dir))
        assert missing.returncode != 0 and "unknown_job" in missing.stderr


def test_a_backend_process_runs_numpy_blas_on_one_thread_unless_told() -> None:
    # Before numpy loads: its OpenBLAS would start a spinning thread per core beside numba's.
    child = (
        "import os, sys\nsys.argv = ['dreamcad-backend', '--version']\n"
        "from backend.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
        "import numpy\nprint(os.environ.get('OPENBLAS_NUM_THREADS'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for preset, expected in ((None, "1"), ("3", "3")):
        if preset:
            env["OPENBLAS_NUM_THREADS"] = preset
        out = subprocess.run([sys.executable, "-c", child], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert out.stdout.strip().splitlines()[-1] == expected
