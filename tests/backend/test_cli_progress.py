"""The CLI's progress in both modes: a live bar on a terminal (a real pseudo-terminal here), one
plain line per stage or file when stderr is a pipe, and never a carriage return in a pipe.

Downloads run against a local folder served as the hub over real HTTP (tests/support/local_hub.py);
``generate`` runs the built-in procedural model for real.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from backend.models.registry import ModelRegistry
from tests.support.backend_process import REPO
from tests.support.local_hub import LocalHub

MODEL = "shap-e-img2img"  # pinned to a branch without checksums: any bytes will do here


def run_cli(args: list[str], env: dict[str, str], terminal: bool) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``python -m backend.cli ARGS``; stderr a pty if asked."""
    full_env = {**os.environ, **env}
    command = [sys.executable, "-m", "backend.cli", *args]
    if not terminal:
        done = subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    # A terminal has a size (a bare pty is 0 columns wide, where tqdm draws nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                               stderr=follower)  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the pty closes when the child exits
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout = process.stdout.read().decode()
    process.wait(300)
    os.close(leader)
    return process.returncode, stdout, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def hub(tmp_path: Path):
    hub = LocalHub(tmp_path / "hub").start()
    for index, file in enumerate(ModelRegistry().adapter_class(MODEL).weights.files):
        hub.add(f"openai/{MODEL}", file.path, os.urandom(200_000 + index))
    yield hub
    hub.stop()


def hub_env(hub: LocalHub, tmp_path: Path) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": ""}  # fmt: skip


def test_download_in_a_pipe_prints_one_line_per_file(hub, tmp_path) -> None:
    code, stdout, stderr = run_cli(["download", MODEL], hub_env(hub, tmp_path), terminal=False)
    assert code == 0, stderr
    files = ModelRegistry().adapter_class(MODEL).weights.files
    lines = stderr.splitlines()
    assert "\r" not in stderr
    assert [line.split("] ")[1].split(" (")[0] for line in lines] == [f.path for f in files]
    assert lines[0].startswith(f"[1/{len(files)}] ") and "MB of" in lines[-1]
    assert f"{MODEL}: weights in " in stdout and str(tmp_path / "hf") in stdout


def test_download_on_a_terminal_draws_a_live_bar(hub, tmp_path) -> None:
    code, stdout, stderr = run_cli(["download", MODEL], hub_env(hub, tmp_path), terminal=True)
    assert code == 0, stderr
    assert "\r" in stderr and "files" in stderr and "B/s" in stderr
    assert f"{MODEL}: weights in " in stdout


def test_generate_in_a_pipe_prints_one_line_per_stage(tmp_path) -> None:
    args = ["generate", "--model", "procedural", "--prompt", "a red torus", "--faces", "1000",
            "--texture-size", "256", "--param", "resolution=32", "--param", "steps=4",
            "-o", str(tmp_path / "torus.glb")]  # fmt: skip
    code, stdout, stderr = run_cli(args, {}, terminal=False)
    assert code == 0, stderr
    stages = [line.split("] ", 1)[1].split(":")[0] for line in stderr.splitlines()
              if line.startswith("[")]  # fmt: skip
    assert "\r" not in stderr
    assert stages[0] == "load" and len(stages) == len(set(stages)) >= 4
    assert "wrote" in stdout
    code, _, live = run_cli(args, {}, terminal=True)
    assert code == 0 and "\r" in live and "%" in live
