"""A tiny random Stable Diffusion pipeline in the hub layout, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.testing.stable_diffusion import write_tiny_stable_diffusion


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))
