"""Background removal: alpha, a rembg-format ONNX network, the classical fallback, framing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.models.common.background import (
    classical_mask,
    composite_on_grey,
    find_segmentation_model,
    remove_background,
    resize_foreground,
)
from shared_protocol.errors import ErrorCode, ProtocolError


def disc_scene(size: int = 96, noise: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A shaded red disc on a light, slightly noisy background: (rgb uint8, truth bool)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    truth = (rows - size * 0.55) ** 2 + (cols - size * 0.45) ** 2 < (size * 0.3) ** 2
    rgb = np.full((size, size, 3), (225.0, 228.0, 232.0)) + rng.normal(0, noise, (size, size, 3))
    shade = 0.6 + 0.4 * cols / size
    rgb[truth] = np.stack([200 * shade, 40 * shade, 30 * shade], -1)[truth]
    return np.clip(rgb, 0, 255).astype(np.uint8), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def write_red_keyed_u2net(path: Path) -> Path:
    """A tiny network in rembg's u2net.onnx format (input 1x3x320x320, mask output first).

    One 1x1 convolution that answers "how red is it" (random-free weights chosen to segment the
    test scene), then a sigmoid: enough to prove the file is found, fed and read correctly.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = np.array([4.0, -4.0, -4.0], np.float32).reshape(1, 3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input.1", "w"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["mask"])],
        "tiny_u2net",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_alpha_is_used_when_present() -> None:
    rgb, truth = disc_scene()
    rgba = np.dstack([rgb, np.where(truth, 255, 0).astype(np.uint8)])
    cutout = remove_background(rgba)
    assert cutout.method == "alpha"
    assert np.array_equal(cutout.rgba, rgba)
    assert cutout.foreground_fraction == pytest.approx(truth.mean())


def test_opaque_alpha_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DREAMCAD_BACKGROUND_MODEL", raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    rgb, _ = disc_scene()
    cutout = remove_background(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    assert cutout.method == "classical"


def test_segmentation_network_from_the_rembg_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    write_red_keyed_u2net(tmp_path / "u2net.onnx")
    monkeypatch.delenv("DREAMCAD_BACKGROUND_MODEL", raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    rgb, truth = disc_scene()
    cutout = remove_background(rgb)
    assert cutout.method == "segmentation:u2net.onnx"
    assert iou(cutout.rgba[:, :, 3] > 127, truth) > 0.9
    assert np.array_equal(cutout.rgba[:, :, :3], rgb)


def test_explicit_model_path_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DREAMCAD_BACKGROUND_MODEL", str(tmp_path / "nope.onnx"))
    with pytest.raises(ProtocolError) as error:
        find_segmentation_model()
    assert error.value.code is ErrorCode.WEIGHTS_MISSING


def test_cache_prefers_the_stronger_network(tmp_path: Path) -> None:
    for name in ("u2netp.onnx", "isnet-general-use.onnx", "u2net.onnx"):
        (tmp_path / name).write_bytes(b"")
    assert find_segmentation_model([tmp_path]) == tmp_path / "isnet-general-use.onnx"
    assert find_segmentation_model([tmp_path / "empty"]) is None


def test_segmentation_without_a_model_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DREAMCAD_BACKGROUND_MODEL", raising=False)
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    with pytest.raises(ProtocolError) as error:
        remove_background(disc_scene()[0], method="segmentation")
    assert error.value.code is ErrorCode.WEIGHTS_MISSING
    assert "u2net" in (error.value.hint or "")


@pytest.mark.parametrize("noise", [0.0, 6.0])
def test_classical_fallback_finds_the_subject(noise: float) -> None:
    rgb, truth = disc_scene(noise=noise)
    assert iou(classical_mask(rgb) > 0, truth) > 0.9


def test_classical_fallback_on_a_dark_background() -> None:
    rgb, truth = disc_scene()
    rgb[~truth] = 255 - rgb[~truth]  # near-black background, same subject
    assert iou(classical_mask(rgb) > 0, truth) > 0.9


def test_blank_image_has_no_subject(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    with pytest.raises(ProtocolError) as error:
        remove_background(np.full((64, 64, 3), 128, np.uint8), method="classical")
    assert error.value.code is ErrorCode.INVALID_IMAGE


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((32, 32), np.uint8),
        np.zeros((32, 32, 3), np.float32),
        np.zeros((4, 4, 3), np.uint8),
    ],
)
def test_bad_arrays_are_invalid_images(image: np.ndarray) -> None:
    with pytest.raises(ProtocolError) as error:
        remove_background(image)
    assert error.value.code is ErrorCode.INVALID_IMAGE


def test_unknown_method_is_an_invalid_parameter() -> None:
    with pytest.raises(ProtocolError) as error:
        remove_background(disc_scene()[0], method="magic")
    assert error.value.code is ErrorCode.INVALID_PARAMETER


def test_resize_foreground_centres_and_scales_like_upstream() -> None:
    rgba = np.zeros((100, 120, 4), np.uint8)
    rgba[10:51, 30:61] = 200  # alpha > 0 on rows 10..50, columns 30..60
    out = resize_foreground(rgba, 0.85)
    # Upstream crops rows [10, 50) and columns [30, 60): a 40 x 30 box, padded to 40 square,
    # then to int(40 / 0.85) = 47.
    assert out.shape == (47, 47, 4)
    rows, cols = np.nonzero(out[:, :, 3])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 42, 8, 37)


def test_resize_foreground_rejects_bad_ratios_and_empty_cutouts() -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    with pytest.raises(ProtocolError) as error:
        resize_foreground(rgba, 0.85)
    assert error.value.code is ErrorCode.INVALID_IMAGE
    rgba[5:10, 5:10, 3] = 255
    with pytest.raises(ProtocolError) as error:
        resize_foreground(rgba, 1.5)
    assert error.value.code is ErrorCode.OUT_OF_RANGE


def test_composite_on_grey() -> None:
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 128]]], np.uint8)
    flat = composite_on_grey(rgba)
    assert flat[0, 0].tolist() == [255, 0, 0]
    assert flat[0, 1].tolist() == [127, 127, 127]
    assert flat[0, 2].tolist() == [63, 63, 191]
