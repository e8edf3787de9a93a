"""Downloading weights: offline failures and unknown components say what to do; checksums."""

from __future__ import annotations

import os
import subprocess
import sys

from backend.download import sha256_of
from tests.support.backend_process import REPO


def test_sha256_of_file(tmp_path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert sha256_of(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _download_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "download", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_download_components_name_what_exists_and_how_to_get_it(tmp_path) -> None:
    unknown = _download_cli(tmp_path, "hunyuan3d-2mini", "--with", "nope")
    assert unknown.returncode == 1
    assert "no component 'nope' (components: paint, turbo-vae)" in unknown.stderr
    offline = _download_cli(tmp_path, "hunyuan3d-2mini", "--with", "paint", "--only")
    assert offline.returncode == 1 and "listing hunyuan3d-delight-v2-0/" in offline.stdout
    assert "weights_missing: cannot reach the Hugging Face hub" in offline.stderr
    assert "DREAMCAD_WEIGHTS_HUNYUAN3D_2MINI_PAINT" in offline.stderr
