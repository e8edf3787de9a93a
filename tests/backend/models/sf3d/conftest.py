"""Shared SF3D fixtures: a tiny random-weight checkpoint written in the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from backend.models.sf3d.config import config_from_dict, tiny_config_dict
from backend.models.sf3d.loading import randomize_weights, save_checkpoint
from backend.models.sf3d.network import SF3DNetwork

DATA = Path(__file__).resolve().parents[3] / "data" / "sf3d"


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.yaml + model.safetensors of a tiny SF3D with random weights."""
    raw = tiny_config_dict()
    model = SF3DNetwork(config_from_dict(raw))
    randomize_weights(model, seed=7)
    folder = tmp_path_factory.mktemp("sf3d-tiny")
    save_checkpoint(model, folder, OmegaConf.to_yaml(OmegaConf.create(raw)))
    return folder
