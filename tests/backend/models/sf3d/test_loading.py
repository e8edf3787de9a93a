"""loading.py: strict loading of the official layout, aliases and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.models.sf3d.isosurface import TetGrid
from backend.models.sf3d.loading import (
    TETS_DIR_ENV,
    WEIGHTS_FILE,
    canonical_key,
    check_weights_dir,
    load_network,
    read_state_dict,
    tet_grid,
    tet_grid_file,
)
from shared_protocol.errors import ErrorCode, ProtocolError


def test_tiny_checkpoint_round_trips_exactly(tiny_weights_dir: Path) -> None:
    model, config = load_network(tiny_weights_dir)
    stored = load_file(str(tiny_weights_dir / WEIGHTS_FILE))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[name]), name
    assert config.cond_image_size == 56
    assert torch.equal(model.image_tokenizer.image_std.flatten(), torch.tensor([0.229, 0.224,
                                                                                0.225]))


def test_flat_modulation_alias_maps_to_the_layer() -> None:
    assert canonical_key("image_tokenizer.modulations.5.linear2.weight") == (
        "image_tokenizer.model.encoder.layer.2.norm2_modulation.linear2.weight"
    )
    assert canonical_key("backbone.proj_out.weight") == "backbone.proj_out.weight"


def test_aliased_fp16_file_loads(tiny_weights_dir: Path, tmp_path: Path) -> None:
    state = load_file(str(tiny_weights_dir / WEIGHTS_FILE))
    renamed = {}
    for key, value in state.items():
        if ".norm1_modulation." in key:
            layer = int(key.split(".")[4])
            key = f"image_tokenizer.modulations.{2 * layer}." + key.split("norm1_modulation.")[1]
        renamed[key] = value.half()
    shutil.copy(tiny_weights_dir / "config.yaml", tmp_path / "config.yaml")
    save_file(renamed, str(tmp_path / WEIGHTS_FILE))
    assert set(read_state_dict(tmp_path / WEIGHTS_FILE)) == set(state)
    model, _ = load_network(tmp_path)
    assert model.decoder.heads["density"][0].weight.dtype == torch.float32


def test_missing_tensor_is_named(tiny_weights_dir: Path, tmp_path: Path) -> None:
    state = load_file(str(tiny_weights_dir / WEIGHTS_FILE))
    del state["backbone.latent_init"]
    shutil.copy(tiny_weights_dir / "config.yaml", tmp_path / "config.yaml")
    save_file(state, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ProtocolError, match=r"1 missing \(e.g. backbone.latent_init\)"):
        load_network(tmp_path)


def test_missing_files_say_how_to_download(tmp_path: Path) -> None:
    for folder in (None, tmp_path):
        with pytest.raises(ProtocolError) as caught:
            check_weights_dir(folder)
        assert caught.value.code == ErrorCode.WEIGHTS_MISSING
        assert "hf auth login" in (caught.value.hint or "")


def test_upstream_tet_grid_file_is_used_when_found(tmp_path: Path, monkeypatch) -> None:
    """{resolution}_tets.npz from the env folder, else the weights folder (or its load/tets)."""
    monkeypatch.delenv(TETS_DIR_ENV, raising=False)
    assert tet_grid_file(16, tmp_path) is None
    assert tet_grid(16, tmp_path).vertices.shape[0] == 9**3  # our regular grid, 8 cells a side
    odd = TetGrid.regular(5)  # a grid of another size, so its use shows
    (tmp_path / "load" / "tets").mkdir(parents=True)
    np.savez(tmp_path / "load" / "tets" / "20_tets.npz", vertices=odd.vertices, indices=odd.tets)
    assert tet_grid_file(20, tmp_path) == tmp_path / "load" / "tets" / "20_tets.npz"
    assert tet_grid(20, tmp_path).vertices.shape[0] == 6**3
    elsewhere = tmp_path / "env"
    elsewhere.mkdir()
    np.savez(elsewhere / "20_tets.npz", vertices=odd.vertices, indices=odd.tets)
    monkeypatch.setenv(TETS_DIR_ENV, str(elsewhere))
    assert tet_grid_file(20, tmp_path) == elsewhere / "20_tets.npz"
    assert tet_grid_file(20, None) == elsewhere / "20_tets.npz"
