"""Shared fixtures: tiny random TripoSR models written in the official on-disk layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.loading import write_model_folder
from backend.models.triposr.testing import random_state, tiny_config


@pytest.fixture(scope="session")
def tiny() -> TripoSRConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_state(tiny: TripoSRConfig) -> dict[str, torch.Tensor]:
    return random_state(tiny, seed=1)


@pytest.fixture
def tiny_folder(tmp_path: Path, tiny: TripoSRConfig, tiny_state: dict) -> Path:
    """A folder laid out like stabilityai/TripoSR holding a tiny random model."""
    write_model_folder(tmp_path / "TripoSR", tiny, tiny_state)
    return tmp_path / "TripoSR"
