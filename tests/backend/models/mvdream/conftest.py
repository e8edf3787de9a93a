"""Tiny MVDream weights folder (seeded weights, upstream's key layout) and loaded models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.models.mvdream.config import CHECKPOINT, TINY
from backend.models.mvdream.loading import build_models, read_checkpoint
from backend.models.mvdream.testing import MANIFESTS, write_tiny_weights

DATA = MANIFESTS  # tests/data/mvdream: upstream's manifests and reference numbers


@pytest.fixture(scope="session")
def mvdream_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("mvdream"), "mvdream")


@pytest.fixture(scope="session")
def tiny_models(mvdream_dir: Path):
    return build_models(read_checkpoint(mvdream_dir / CHECKPOINT), TINY, "cpu", torch.float32)
