"""Shared fixtures: the Hunyuan3D-2 parity references, written in the official on-disk layout.

The parity files (tests/data/hunyuan/parity_<kind>.npz) hold a tiny config (``config_yaml``),
random weights under ``weight:<official key>``, fixed inputs and hy3dgen 2.0.2's outputs for
them. ``write_reference_variant`` hands one to the family's writer
(:func:`backend.models.hunyuan3d.testing.write_variant`: config.yaml + model.fp16.safetensors)
so the tests load it through the same code that loads the real checkpoints.
``parity_flashvdm.npz`` adds FlashVDM decodes with adaptive key selection and a tiny turbo VAE
(``turbo_weight:<key>``, unprefixed as in the official VAE folders), which
``write_reference_vae`` writes out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.models.hunyuan3d.testing import write_vae, write_variant

DATA = Path(__file__).resolve().parents[3] / "data" / "hunyuan"
KINDS = ("plain", "turbo", "mv")


def load_reference(kind: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"parity_{kind}.npz") as data:
        return {key: data[key] for key in data.files}


def prefixed_tensors(reference: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The reference arrays stored under ``prefix`` + key, as a state dict keyed by key."""
    return {
        key.removeprefix(prefix): torch.from_numpy(np.ascontiguousarray(value))
        for key, value in reference.items()
        if key.startswith(prefix)
    }


def write_reference_variant(reference: dict[str, np.ndarray], folder: Path) -> Path:
    """A parity reference's config and weights (float32) as a variant folder."""
    weights = prefixed_tensors(reference, "weight:")
    return write_variant(folder, str(reference["config_yaml"]), weights)


def write_reference_vae(reference: dict[str, np.ndarray], folder: Path) -> Path:
    """The tiny turbo VAE of ``parity_flashvdm.npz`` as an official VAE folder."""
    return write_vae(
        folder, str(reference["turbo_config_yaml"]), prefixed_tensors(reference, "turbo_weight:")
    )


def reference_mask(reference: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The bool grid of points upstream queried, unpacked from ``<name>_mask``/``_shape``."""
    shape = tuple(int(s) for s in reference[f"{name}_shape"])
    bits = np.unpackbits(reference[f"{name}_mask"])[: int(np.prod(shape))]
    return bits.reshape(shape).astype(bool)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tiny_variant(tmp_path: Path) -> Path:
    """The plain (CFG, Euler) tiny variant as a folder."""
    return write_reference_variant(load_reference("plain"), tmp_path / "hunyuan3d-dit-v2-mini")
