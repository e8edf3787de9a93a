"""Shared fixtures: tiny random TRELLIS models written in the official layout (testing.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from backend.models.trellis import testing


@dataclass(frozen=True)
class TinyModel:
    """A tiny model's own folder (as ``download MODEL`` leaves it) and its components'."""

    model_id: str
    folder: Path
    components: dict[str, Path]


def _write(root: Path, model_id: str) -> TinyModel:
    folder = testing.write_tiny_weights(root / model_id, model_id)
    components = testing.write_tiny_components(root / f"{model_id}-components", model_id)
    return TinyModel(model_id, folder, components)


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return _write(tmp_path_factory.mktemp("trellis"), "trellis-image-large")


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return _write(tmp_path_factory.mktemp("trellis"), "trellis-text-base")


def cutout(size: int = 64, box: tuple[int, int, int, int] = (20, 16, 44, 48)) -> np.ndarray:
    """An RGBA cut-out: a shaded opaque rectangle (left, top, right, bottom) on transparency."""
    rgba = np.zeros((size, size, 4), np.uint8)
    left, top, right, bottom = box
    rows = np.linspace(90, 230, bottom - top, dtype=np.uint8)[:, None]
    rgba[top:bottom, left:right, 0] = rows
    rgba[top:bottom, left:right, 1] = 120
    rgba[top:bottom, left:right, 2] = 255 - rows
    rgba[top:bottom, left:right, 3] = 255
    return rgba
