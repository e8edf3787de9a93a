"""Tiny random picture models in the hub layout, written once per session: the bridge's own
(SDXL-Turbo's layout) and a Stable Diffusion pipeline a request can name in ``text_model``."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.image_bridge.testing import write_tiny_stable_diffusion, write_tiny_weights


@pytest.fixture(scope="session")
def bridge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("sdxl-turbo"), "image-bridge")


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))
