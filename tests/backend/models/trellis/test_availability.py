"""The four TRELLIS models as a user meets them without weights: listed by ``models`` with their
parameters, and a ``generate`` that stops with ``weights_missing`` and the download command
(real ``dreamcad-backend`` subprocesses, an empty Hugging Face cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backend_process import REPO

pytestmark = pytest.mark.slow
TRELLIS = ("trellis-image-large", "trellis-text-base", "trellis-text-large", "trellis-text-xlarge")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DREAMCAD_WEIGHTS_", "HF_"))}  # fmt: skip
    env.update(HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1", DREAMCAD_DATA_DIR=str(home / "data"))
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_models_lists_the_four_with_their_parameters_and_what_is_missing(tmp_path) -> None:
    result = cli(tmp_path, "models", "--json")
    assert result.returncode == 0, result.stderr
    models = {m["id"]: m for m in json.loads(result.stdout)}
    for model_id in TRELLIS:
        info = models[model_id]
        assert not info["weights_present"] and not info["available"]
        assert f"dreamcad-backend download {model_id}" in info["unavailable_reason"]
        names = {p["name"] for p in info["parameters"]}
        assert {"quality", "gaussians", "structure_steps", "latent_guidance"} <= names
    assert models["trellis-image-large"]["max_images"] == 8


@pytest.mark.parametrize("model_id", ["trellis-image-large", "trellis-text-xlarge"])
def test_generate_without_weights_says_how_to_download_them(tmp_path, model_id) -> None:
    task = ("--image", str(REPO / "backend/assets/example.png")) if "image" in model_id else (
        "--prompt", "a chair")  # fmt: skip
    result = cli(tmp_path, "generate", "--model", model_id, *task, "-o", str(tmp_path / "x.glb"),
                 "--device", "cpu")  # fmt: skip
    assert result.returncode != 0 and not (tmp_path / "x.glb").exists()
    assert "weights_missing" in result.stderr, result.stderr
    assert f"dreamcad-backend download {model_id}" in result.stderr
