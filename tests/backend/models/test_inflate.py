"""The built-in ``inflate`` model: silhouette -> watertight puffy body coloured from the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.cancellation import Cancelled, CancelToken
from backend.geometry import clean, quality
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.builtin.inflate import InflateAdapter, subject_mask
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.blender_import import assert_baked_material, import_glb
from tests.support.gltf_validator import error_messages, validate

EXAMPLE = Path(__file__).resolve().parents[3] / "backend" / "assets" / "example.png"


def disc_image(size: int = 96, alpha: bool = True) -> np.ndarray:
    """A disc, left half red and right half blue, on transparent or plain white (h, w, 4)."""
    yy, xx = np.mgrid[:size, :size]
    inside = (xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2 < (size * 0.4) ** 2
    pixels = np.full((size, size, 4), 255, dtype=np.uint8)
    pixels[..., 3] = np.where(inside, 255, 0) if alpha else 255
    colour = np.where((xx < size / 2)[..., None], [220, 30, 30], [30, 30, 220])
    pixels[inside, :3] = colour[inside]
    return pixels


def generate(pixels: np.ndarray, **parameters) -> tuple:
    adapter = InflateAdapter()
    adapter.load("cpu")
    request = GenerationRequest(task="image", images=(ImagePixels(pixels),), parameters=parameters)
    adapter.check_inputs(request)
    events = []
    raw = adapter.generate(request, lambda *args, **_: events.append(args), CancelToken())
    return raw, events


def test_info_declares_a_weightless_image_model():
    info = InflateAdapter().info()
    assert info.id == "inflate" and info.tasks == ("image",)
    assert info.vram_mb == 0 and info.license == "MIT" and info.available


@pytest.mark.parametrize("alpha", [True, False])
def test_disc_inflates_to_a_closed_outward_body(alpha):
    raw, events = generate(disc_image(alpha=alpha), resolution=64)
    assert {e[0] for e in events} == {"mask", "inflate", "surface", "colour"}
    topology = quality.topology(raw.vertices, raw.faces)
    assert topology["watertight"] and topology["pieces"] == 1
    _, flipped = clean.orient_faces(raw.vertices, raw.faces)
    assert not flipped.any()  # already wound outward, as RawAsset promises
    extent = raw.vertices.max(axis=0) - raw.vertices.min(axis=0)
    assert extent[0] == pytest.approx(1.0, abs=0.05) and extent[1] == pytest.approx(1.0, abs=0.05)
    assert 0.2 < extent[2] < 0.9  # puffy, not flat, not a ball


def test_front_and_back_take_the_image_colours():
    raw, _ = generate(disc_image(), resolution=64)
    left = np.array([[-0.25, 0.0, 0.2], [-0.25, 0.0, -0.2]], dtype=np.float32)
    right = np.array([[0.25, 0.0, 0.2], [0.25, 0.0, -0.2]], dtype=np.float32)
    assert np.all(raw.color_field(left)[:, 0] > 0.8) and np.all(raw.color_field(left)[:, 2] < 0.2)
    assert np.all(raw.color_field(right)[:, 2] > 0.8)
    # The rim never picks up the (white) background.
    rim = np.array([[0.0, 0.42, 0.0], [0.42, 0.0, 0.0]], dtype=np.float32)
    assert np.all(raw.color_field(rim).min(axis=1) < 0.5)


def test_mask_keys_away_a_plain_background():
    mask = subject_mask(disc_image(alpha=False), "color_key")
    assert mask.sum() == pytest.approx(np.pi * (96 * 0.4) ** 2, rel=0.05)


def test_empty_image_is_an_invalid_image_error():
    pixels = np.zeros((32, 32, 4), dtype=np.uint8)
    with pytest.raises(ProtocolError) as caught:
        generate(pixels)
    assert caught.value.code == ErrorCode.INVALID_IMAGE


def test_bad_parameter_is_rejected_up_front():
    with pytest.raises(ProtocolError) as caught:
        generate(disc_image(), thickness=9.0)
    assert caught.value.code == ErrorCode.OUT_OF_RANGE


def test_cancel_is_honoured():
    adapter = InflateAdapter()
    adapter.load("cpu")
    token = CancelToken()

    def progress(stage, *_args, **_kwargs):
        if stage == "inflate":
            token.cancel()

    request = GenerationRequest(task="image", images=(ImagePixels(disc_image()),))
    with pytest.raises(Cancelled):
        adapter.generate(request, progress, token)


def test_example_image_gives_a_checked_glb(tmp_path):
    assert EXAMPLE.stat().st_size < 300_000
    pixels = np.asarray(Image.open(EXAMPLE).convert("RGBA"))
    raw, _ = generate(pixels, resolution=96)
    result = run_pipeline(raw, PipelineOptions(target_faces=3000, texture_size=512))
    assert result.quality["watertight"] and result.quality["flipped_faces"] == 0
    path = tmp_path / "example.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    assert_baked_material(import_glb(path), result.faces)
