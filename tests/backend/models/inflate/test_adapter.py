"""The built-in inflate image model on drawn pictures."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from backend.models.base import CancelToken, GenerationRequest, InputImage
from backend.models.inflate.adapter import InflateAdapter, silhouette
from shared_protocol.errors import ErrorCode, ProtocolError


def _disc_picture(alpha: bool) -> np.ndarray:
    pixels = np.full((64, 64, 4), 255, np.uint8)
    yy, xx = np.mgrid[:64, :64]
    inside = (yy - 32) ** 2 + (xx - 40) ** 2 < 18**2
    pixels[inside, :3] = (200, 30, 30)
    if alpha:
        pixels[..., 3] = np.where(inside, 255, 0)
    return pixels


@pytest.mark.parametrize("alpha", [True, False])
def test_silhouette_from_alpha_or_border(alpha: bool) -> None:
    mask = silhouette(_disc_picture(alpha))
    assert mask[32, 40] and not mask[2, 2] and 900 < mask.sum() < 1100


def test_disc_becomes_a_closed_lens_with_its_colour() -> None:
    adapter = InflateAdapter()
    adapter.load("cpu")
    request = GenerationRequest(task="image", images=(InputImage(_disc_picture(False)),),
                                parameters={"resolution": 48})
    asset = adapter.generate(request, lambda *a, **k: None, CancelToken())
    mesh = trimesh.Trimesh(asset.vertices, asset.faces)
    assert mesh.is_watertight and mesh.volume > 0
    centre = asset.vertices.mean(axis=0)
    assert centre[0] > 0.1  # the disc sits right of the image centre
    assert abs(centre[2]) < 0.05  # symmetric front/back
    colours = asset.color_field(np.array([[0.25, 0.0, 0.3]], np.float32))
    np.testing.assert_allclose(colours[0], np.array([200, 30, 30]) / 255.0, atol=0.02)


def test_blank_picture_is_an_input_error() -> None:
    adapter = InflateAdapter()
    request = GenerationRequest(task="image",
                                images=(InputImage(np.full((32, 32, 4), 255, np.uint8)),))
    with pytest.raises(ProtocolError) as caught:
        adapter.generate(request, lambda *a, **k: None, CancelToken())
    assert caught.value.code == ErrorCode.INVALID_IMAGE
