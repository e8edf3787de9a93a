"""Downloading weights: offline and disk-space failures say what to do; checksums are checked."""

from __future__ import annotations

import os
import subprocess
import sys

from backend.download import check_disk, sha256_of
from backend.models.base import WeightFile
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.backend_process import REPO

OFFLINE_SCRIPT = """
from backend.download import download_weights
from backend.models.base import WeightFile, WeightsSource
from backend.models.builtin.procedural import ProceduralAdapter
from shared_protocol.errors import ProtocolError

class Remote(ProceduralAdapter):
    id = "remote"
    weights = WeightsSource("stabilityai/TripoSR", "main", (WeightFile("config.yaml"),))

try:
    download_weights(Remote)
except ProtocolError as error:
    print(error.info.describe())
"""


def test_offline_download_explains_the_fix(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("weights_missing: cannot reach the Hugging Face hub"), (
        result.stdout + result.stderr
    )
    assert "HF_HUB_OFFLINE" in result.stdout and "DREAMCAD_WEIGHTS_REMOTE" in result.stdout


def test_disk_check_refuses_downloads_that_cannot_fit(tmp_path) -> None:
    check_disk((WeightFile("small.bin", size=1024),), tmp_path)
    huge = (WeightFile("huge.bin", size=1 << 60),)
    try:
        check_disk(huge, tmp_path)
    except ProtocolError as error:
        assert error.code is ErrorCode.DISK_FULL and "HF_HOME" in error.hint
    else:
        raise AssertionError("a 1 EiB download must be refused")


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
