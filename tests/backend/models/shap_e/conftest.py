"""Tiny random Shap-E pipelines in the hub layout, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.testing.shap_e import write_shap_e_image, write_shap_e_text


@pytest.fixture(scope="session")
def shap_e_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shap_e_text(tmp_path_factory.mktemp("shap-e"))


@pytest.fixture(scope="session")
def shap_e_image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shap_e_image(tmp_path_factory.mktemp("shap-e-img2img"))
