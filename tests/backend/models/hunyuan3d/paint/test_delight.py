"""The delight model: a tiny random InstructPix2Pix folder loaded and run through our code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import CancelToken
from backend.models.hunyuan3d.paint.delight import (
    delight,
    erode_alpha,
    load_delight,
    match_colours,
    prepare,
)
from backend.models.testing.instruct_pix2pix import write_tiny_instruct_pix2pix
from shared_protocol.errors import ErrorCode, ProtocolError


@pytest.fixture(scope="module")
def tiny_delight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_instruct_pix2pix(tmp_path_factory.mktemp("hunyuan3d-delight-v2-0"))


def _rgba(size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    image[..., 3] = 0
    image[8:32, 8:32, 3] = 255
    return image


def test_delight_runs_with_progress_and_is_deterministic(tiny_delight: Path) -> None:
    pipeline = load_delight(tiny_delight, "cpu")
    calls: list[tuple[str, int, int]] = []
    kwargs = {"progress": lambda *a: calls.append(a), "cancel": CancelToken(), "steps": 3,
              "size": 16}
    first = delight(pipeline, _rgba(), **kwargs)
    second = delight(pipeline, _rgba(), **kwargs)
    assert first.shape == (16, 16, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert calls[-1] == ("delight", 3, 3)
    # transparent corners are composited onto white
    assert (first[0, 0] == 255).all()
    # the network changed the object's pixels (not a pass-through of the input)
    rgb, _ = prepare(_rgba(), 16)
    assert np.abs(first[6:10, 6:10].astype(int) - rgb[6:10, 6:10]).max() > 0


def test_delight_cancels_between_steps(tiny_delight: Path) -> None:
    from backend.cancellation import Cancelled

    pipeline = load_delight(tiny_delight, "cpu")
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        delight(pipeline, _rgba(), progress=lambda *a: cancel.cancel(), cancel=cancel, steps=3,
                size=16)


def test_missing_folder_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as error:
        load_delight(tmp_path, "cpu")
    assert error.value.code == ErrorCode.WEIGHTS_MISSING


def test_bad_image_is_rejected() -> None:
    with pytest.raises(ProtocolError) as error:
        prepare(np.zeros((4, 4), np.uint8), 8)
    assert error.value.code == ErrorCode.INVALID_IMAGE


def test_erode_alpha_shrinks_the_mask_by_one_pixel() -> None:
    alpha = np.zeros((7, 7), np.uint8)
    alpha[1:6, 1:6] = 255
    eroded = erode_alpha(alpha)
    assert eroded[2:5, 2:5].min() == 255 and eroded.sum() == 9 * 255


def test_match_colours_moves_statistics_towards_the_target() -> None:
    rng = np.random.default_rng(1)
    target = rng.uniform(0.2, 0.8, (8, 8, 3))
    source = target * 0.5 + 0.1
    corrected = match_colours(source, target, np.ones((8, 8)))
    assert np.mean((corrected - target) ** 2) < np.mean((source - target) ** 2)
