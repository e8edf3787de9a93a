"""Shared SF3D fixtures: a tiny random-weight checkpoint written in the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from backend.models.sf3d.config import config_from_dict, tiny_config_dict
from backend.models.sf3d.loading import save_checkpoint
from backend.models.sf3d.network import SF3DNetwork

DATA = Path(__file__).resolve().parents[3] / "data" / "sf3d"


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial random weights (zero-initialised modulations too), reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and name != "bbox":
                scale = 0.5 if tensor.ndim <= 1 else 1.0 / max(tensor.shape[-1], 1) ** 0.5
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale)


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.yaml + model.safetensors of a tiny SF3D with random weights."""
    raw = tiny_config_dict()
    model = SF3DNetwork(config_from_dict(raw))
    randomize(model, seed=7)
    folder = tmp_path_factory.mktemp("sf3d-tiny")
    save_checkpoint(model, folder, OmegaConf.to_yaml(OmegaConf.create(raw)))
    return folder
