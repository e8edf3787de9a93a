"""Shared SF3D fixtures: a tiny random-weight checkpoint written in the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.sf3d.testing import write_tiny_weights

DATA = Path(__file__).resolve().parents[3] / "data" / "sf3d"


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.yaml + model.safetensors of a tiny SF3D with random weights (seed 7)."""
    return write_tiny_weights(tmp_path_factory.mktemp("sf3d-tiny"), "sf3d")
