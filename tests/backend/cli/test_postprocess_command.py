"""``dreamcad-backend postprocess`` as a user runs it: a fresh process that loads only what the
geometry path uses (issue 18 times the command end to end, start-up included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from backend.cli import build_parser, postprocess_parser
from tests.support.analytic_meshes import marching_cubes_mesh, sphere_field
from tests.support.backend_process import REPO

# Modules a CPU postprocess has no use for: the service (zmq, server, job store, models),
# torch, the scipy parts the pipeline replaced, trimesh (a binary PLY is read without it),
# scipy.linalg (numba.np.arraymath imports it for its BLAS probe; blas_probe answers from files),
# the message classes (shared_protocol.limits holds the few numbers the pipeline reads).
NOT_LOADED = (
    "zmq", "torch", "scipy.sparse", "scipy.spatial", "trimesh", "PIL", "backend.server",
    "backend.handlers", "backend.models", "backend.jobs", "backend.doctor", "scipy.linalg",
    "shared_protocol.messages", "shared_protocol.framing",
)  # fmt: skip

CHILD = """
import json, sys
from backend.cli import main
code = main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
raise SystemExit(code)
"""


def _write_ply(path: Path) -> None:
    """A binary little-endian PLY of a marching-cubes sphere (the layout ply_binary reads)."""
    vertices, faces = marching_cubes_mesh(sphere_field, 24)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    rows = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", 3)])
    rows["n"], rows["v"] = 3, faces
    path.write_bytes(header.encode() + np.asarray(vertices, "<f4").tobytes() + rows.tobytes())


def test_postprocess_process_loads_only_the_geometry_path(tmp_path: Path) -> None:
    source, out = tmp_path / "ball.ply", tmp_path / "ball.glb"
    _write_ply(source)
    command = [sys.executable, "-c", CHILD, "postprocess", str(source), "-o", str(out),
               "--faces", "500", "--texture-size", "256"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "backend.geometry.pipeline" in loaded and out.read_bytes()[:4] == b"glTF"
    heavy = sorted(
        name for name in loaded if any(name == n or name.startswith(n + ".") for n in NOT_LOADED)
    )
    assert heavy == []


def test_postprocess_parser_only_for_the_postprocess_command() -> None:
    args = ["--log-level", "DEBUG", "postprocess", "in.ply", "-o", "out.glb", "--faces", "900"]
    light = postprocess_parser(args)
    assert light is not None
    assert vars(light.parse_args(args)) | {"func": None} == vars(
        build_parser().parse_args(args)
    ) | {"func": None}
    assert postprocess_parser(["--log-level=DEBUG", "postprocess", "x.ply", "-o", "y.glb"])
    for other in (["--version", "postprocess"], ["generate", "--prompt", "x"], [], ["--log-level"]):
        assert postprocess_parser(other) is None


def test_postprocess_command_ends_its_process_with_its_output_flushed(tmp_path: Path) -> None:
    # The command line's own process ends through os._exit (no interpreter teardown): what it
    # printed into a pipe and every file it writes must still be there, and the code be 0.
    source, out = tmp_path / "ball.ply", tmp_path / "ball.glb"
    _write_ply(source)
    command = [sys.executable, "-m", "backend.cli", "postprocess", str(source), "-o", str(out),
               "--faces", "500", "--texture-size", "256"]  # fmt: skip
    # A pipe block-buffers stdout unless PYTHONUNBUFFERED says otherwise (as it may here).
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=environment)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out} (") and result.stdout.endswith("faces)\n")
    manifest = json.loads(out.with_name(out.name + ".json").read_text())
    assert manifest["faces"] > 0 and out.read_bytes()[:4] == b"glTF"
    assert out.with_name("ball.preview.png").read_bytes()[:4] == b"\x89PNG"
