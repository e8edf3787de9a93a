"""Tiny random Shap-E pipelines in the hub layout, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.shap_e.testing import write_tiny_weights


@pytest.fixture(scope="session")
def shap_e_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("shap-e"), "shap-e")


@pytest.fixture(scope="session")
def shap_e_image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("shap-e-img2img"), "shap-e-img2img")
