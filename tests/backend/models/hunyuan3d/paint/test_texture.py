"""The texture stage on a real mesh with tiny random delight and paint models (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from backend.cancellation import CancelToken
from backend.models.hunyuan3d.paint_delight import load_delight
from backend.models.hunyuan3d.paint_loading import load_paint_models
from backend.models.hunyuan3d.paint_texture import PaintSettings, paint_mesh, recenter_rgba
from backend.models.testing.hunyuan_paint import write_tiny_paint_model
from backend.models.testing.instruct_pix2pix import write_tiny_instruct_pix2pix
from shared_protocol.errors import ErrorCode, ProtocolError

TINY = PaintSettings(max_faces=300, texture_size=64, view_size=16, render_size=32, steps=2,
                     delight_steps=2)


@pytest.fixture(scope="module")
def paint_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    delight_dir = write_tiny_instruct_pix2pix(tmp_path_factory.mktemp("delight"))
    paint_dir = write_tiny_paint_model(tmp_path_factory.mktemp("paint"))
    return load_delight(delight_dir, "cpu"), load_paint_models(paint_dir, "cpu", torch.float32)


def _image() -> np.ndarray:
    image = np.zeros((40, 40, 4), np.uint8)
    image[10:30, 5:35] = (200, 40, 40, 255)
    return image


def test_paint_mesh_gives_uvs_and_a_filled_texture(paint_parts: tuple) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    stages: list[str] = []
    painted = paint_mesh(sphere.vertices, sphere.faces, _image(), *paint_parts, TINY,
                         lambda stage, *a, **k: stages.append(stage), CancelToken())
    assert len(painted.faces) <= 300 * 1.02
    assert painted.uvs.shape == (len(painted.vertices), 2)
    assert painted.uvs.min() >= 0 and painted.uvs.max() <= 1
    assert painted.texture.shape == (64, 64, 3) and painted.texture.dtype == np.uint8
    assert painted.texture.std() > 0  # generated content, not one flat fill
    assert {"delight", "paint", "texture_bake"} <= set(stages)


def test_recenter_pads_the_subject() -> None:
    square = recenter_rgba(_image())
    assert square.shape[0] == square.shape[1] == 30 + 2 * 6
    assert square[..., 3].sum() == _image()[..., 3].sum()
    with pytest.raises(ProtocolError) as error:
        recenter_rgba(np.zeros((8, 8, 4), np.uint8))
    assert error.value.code == ErrorCode.INVALID_IMAGE


def test_paint_dirs_are_only_needed_for_paint(tmp_path: Path) -> None:
    from backend.models.hunyuan3d.adapter import Hunyuan3D2MiniAdapter

    with pytest.raises(ProtocolError) as error:
        Hunyuan3D2MiniAdapter(tmp_path)._paint_dirs()
    assert error.value.field == "body.parameters.texture"
