"""The texture stage on a real mesh with tiny random delight and paint models (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from backend.cancellation import CancelToken
from backend.models.hunyuan3d.paint.delight import load_delight
from backend.models.hunyuan3d.paint.loading import load_paint_models
from backend.models.hunyuan3d.paint.render import VIEW_WEIGHTS
from backend.models.hunyuan3d.paint.texture import PaintSettings, paint_views, recenter_rgba
from backend.models.testing.hunyuan_paint import write_tiny_paint_model
from backend.models.testing.instruct_pix2pix import write_tiny_instruct_pix2pix
from shared_protocol.errors import ErrorCode, ProtocolError

TINY = PaintSettings(view_size=16, steps=2, delight_steps=2)


@pytest.fixture(scope="module")
def paint_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    delight_dir = write_tiny_instruct_pix2pix(tmp_path_factory.mktemp("delight"))
    paint_dir = write_tiny_paint_model(tmp_path_factory.mktemp("paint"))
    return load_delight(delight_dir, "cpu"), load_paint_models(paint_dir, "cpu", torch.float32)


def _image() -> np.ndarray:
    image = np.zeros((40, 40, 4), np.uint8)
    image[10:30, 5:35] = (200, 40, 40, 255)
    return image


def test_paint_views_gives_six_views_with_the_mesh_as_alpha(paint_parts: tuple) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    stages: list[str] = []
    painted = paint_views(sphere.vertices, sphere.faces, _image(), *paint_parts, TINY,
                          lambda stage, *a, **k: stages.append(stage), CancelToken())
    assert painted.images.shape == (6, 16, 16, 4) and painted.images.dtype == np.uint8
    assert painted.images[..., :3].std() > 0  # generated content, not one flat fill
    np.testing.assert_array_equal(painted.weights, VIEW_WEIGHTS)
    # A sphere centred in every view: alpha is its disc (radius 0.575 of the 1.2-wide view).
    centre = (np.arange(16) + 0.5 - 8) / 16 * 1.2
    disc = centre[:, None] ** 2 + centre[None, :] ** 2 < 0.575**2 - 0.01
    assert (painted.images[:, disc, 3] == 255).all()
    ring = centre[:, None] ** 2 + centre[None, :] ** 2 > 0.575**2 + 0.01
    assert (painted.images[:, ring, 3] == 0).all()
    assert {"delight", "paint"} <= set(stages) and "texture_bake" not in stages


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
    assert error.value.field == "parameters.texture"
