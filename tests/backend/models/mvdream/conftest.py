"""Tiny MVDream checkpoint (seeded weights, upstream's key layout) and loaded models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.models.mvdream.config import TINY
from backend.models.mvdream.loading import CHECKPOINT, build_models, read_checkpoint
from backend.models.testing.clip_tokenizer import write_clip_tokenizer
from backend.models.testing.mvdream import write_mvdream_checkpoint

DATA = Path(__file__).resolve().parents[3] / "data" / "mvdream"


@pytest.fixture(scope="session")
def mvdream_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mvdream")
    write_mvdream_checkpoint(DATA / "tiny_manifest.json", folder / CHECKPOINT, TINY)
    write_clip_tokenizer(folder / "tokenizer")
    return folder


@pytest.fixture(scope="session")
def tiny_models(mvdream_dir: Path):
    return build_models(read_checkpoint(mvdream_dir / CHECKPOINT), TINY, "cpu", torch.float32)
