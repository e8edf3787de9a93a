"""Background removal and foreground framing shared by the image-to-3D models.

Three ways to a cut-out, tried in order by :func:`remove_background`:

1. the image's own alpha, when it has any transparency (what upstream TripoSR/SF3D do);
2. a segmentation network in rembg's ONNX format (U^2-Net, IS-Net, BiRefNet files such as
   ``u2net.onnx`` or ``birefnet-general.onnx``) found at a local path: ``DREAMCAD_BACKGROUND_MODEL``
   or rembg's cache folder (``U2NET_HOME``, default ``~/.u2net``); nothing is downloaded;
3. a classical fallback with no weights: the background colour is keyed from the image border,
   then refined with OpenCV's GrabCut (when OpenCV is installed) and cleaned morphologically,
   so generation never fails offline.

:func:`resize_foreground` then crops to the subject, pads it square and centres it so it fills
``ratio`` of the frame (upstream's ``resize_foreground``), and :func:`composite_on_grey` flattens
onto the neutral grey the models were trained with. Arrays in, new arrays out.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from shared_protocol.errors import ErrorCode, ProtocolError

# rembg model files we understand, by file stem prefix: (input size, mean, std, sigmoid output).
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SEGMENTATION_SPECS: dict[str, tuple[int, tuple, tuple, bool]] = {
    "birefnet": (1024, *IMAGENET, True),
    "isnet": (1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), False),
    "u2net": (320, *IMAGENET, False),
    "silueta": (320, *IMAGENET, False),
}
# Preference order when several files sit in the cache folder.
PREFERRED_FILES = (
    "birefnet-general.onnx", "isnet-general-use.onnx", "u2net.onnx", "u2netp.onnx", "silueta.onnx",
)
BORDER_PIXELS = 4  # border width sampled for the colour key
KEY_DISTANCE = 28.0  # RGB distance from the border colour that counts as subject (0-255 scale)


@dataclass(frozen=True)
class Cutout:
    """An RGBA cut-out and how it was made ("alpha", "segmentation:<file>", "classical")."""

    rgba: np.ndarray
    method: str
    foreground_fraction: float


def remove_background(
    image: np.ndarray, *, method: str = "auto", segmentation_model: Path | None = None
) -> Cutout:
    """Cut the subject out of ``image``.

    image : (h, w, 3|4) uint8
    method : "auto" (alpha, else network, else classical), "alpha", "segmentation", "classical"
    segmentation_model : an ONNX file; default: :func:`find_segmentation_model`
    returns a :class:`Cutout` with rgba (h, w, 4) uint8
    """
    rgb, alpha = _split(image)
    if method not in ("auto", "alpha", "segmentation", "classical"):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"background removal method {method!r} is not auto, alpha, segmentation or classical",
            field="parameters.background",
        )
    if method in ("auto", "alpha") and alpha is not None and alpha.min() < 255:
        return _cutout(rgb, alpha, "alpha")
    if method == "alpha":
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "background 'alpha' was asked for but the image has no transparency",
            field="images",
            hint="Send a PNG with a transparent background, or use background 'auto'.",
        )
    if method in ("auto", "segmentation"):
        model = segmentation_model or find_segmentation_model()
        if model is not None:
            return _cutout(rgb, segment_with_onnx(rgb, model), f"segmentation:{model.name}")
        if method == "segmentation":
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                "no background segmentation model found",
                hint="Put a rembg ONNX model (e.g. u2net.onnx) in ~/.u2net or point "
                "DREAMCAD_BACKGROUND_MODEL at one; 'auto' falls back to a classical cut-out.",
            )
    return _cutout(rgb, classical_mask(rgb), "classical")


def prepare_images(images: tuple[Any, ...], method: str) -> tuple[Any, ...]:
    """The one input path of every image model: each image's alpha becomes its subject mask.

    images : ImagePixels (``pixels`` (h, w, 4) uint8 RGBA) -> the same with cut-out pixels
    method : one of BACKGROUND_METHODS; "none" keeps each image as it is
    Errors name the image at fault (``images[i]``).
    """
    if method == "none":
        return images
    prepared = []
    for index, image in enumerate(images):
        try:
            cutout = remove_background(image.pixels, method=method)
        except ProtocolError as error:
            if error.info.field == "images":
                raise ProtocolError(
                    ErrorCode(error.info.code), error.info.message, field=f"images[{index}]",
                    hint=error.info.hint,
                ) from error
            raise
        prepared.append(dataclasses.replace(image, pixels=cutout.rgba))
    return tuple(prepared)


def _split(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            f"expected an (h, w, 3|4) uint8 image, got {image.shape} {image.dtype}",
            field="images",
        )
    if min(image.shape[:2]) < 8:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"image {image.shape[1]}x{image.shape[0]} is too small",
            field="images",
        )
    alpha = image[:, :, 3] if image.shape[2] == 4 else None
    return np.ascontiguousarray(image[:, :, :3]), alpha


def _cutout(rgb: np.ndarray, alpha: np.ndarray, method: str) -> Cutout:
    fraction = float((alpha > 0).mean())
    if fraction == 0.0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            f"no subject found in the image (background removal: {method})",
            field="images",
            hint="Use an image whose subject stands out from a plain background, or send a "
            "PNG with the background already transparent.",
        )
    return Cutout(np.dstack([rgb, alpha.astype(np.uint8)]), method, fraction)


def find_segmentation_model(folders: list[Path] | None = None) -> Path | None:
    """A local rembg-format ONNX model: ``DREAMCAD_BACKGROUND_MODEL``, else rembg's cache."""
    explicit = os.environ.get("DREAMCAD_BACKGROUND_MODEL")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"DREAMCAD_BACKGROUND_MODEL points at {path}, which does not exist",
                hint="Fix or unset DREAMCAD_BACKGROUND_MODEL.",
            )
        return path
    if folders is None:
        home = os.environ.get("U2NET_HOME") or Path.home() / ".u2net"
        folders = [Path(home).expanduser()]
    for folder in folders:
        for name in PREFERRED_FILES:
            if (folder / name).is_file():
                return folder / name
    return None


def segmentation_spec(model: Path) -> tuple[int, tuple, tuple, bool]:
    """(input size, mean, std, apply sigmoid) for a rembg model file, by its name."""
    stem = model.stem.lower()
    for prefix, spec in SEGMENTATION_SPECS.items():
        if stem.startswith(prefix):
            return spec
    raise ProtocolError(
        ErrorCode.INVALID_PARAMETER,
        f"unknown segmentation model {model.name}: expected a rembg file named like "
        f"{', '.join(PREFERRED_FILES)}",
        hint="Rename it after the network it holds, or unset DREAMCAD_BACKGROUND_MODEL.",
    )


def segment_with_onnx(rgb: np.ndarray, model: Path) -> np.ndarray:
    """Run a rembg-format network on ``rgb`` (h, w, 3) uint8 -> alpha (h, w) uint8."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            "onnxruntime is not installed, so the segmentation model cannot run",
            hint="pip install onnxruntime (or onnxruntime-gpu), or use background 'classical'.",
        ) from error
    size, mean, std, sigmoid = segmentation_spec(model)
    try:
        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        raise ProtocolError(
            ErrorCode.MODEL_FAILED, f"cannot load segmentation model {model.name}: {error}"
        ) from error
    small = np.asarray(Image.fromarray(rgb).resize((size, size), Image.LANCZOS), np.float32)
    small = small / max(float(small.max()), 1e-6)  # rembg scales by the image maximum
    small = (small - np.float32(mean)) / np.float32(std)
    batch = small.transpose(2, 0, 1)[None].astype(np.float32)
    prediction = session.run(None, {session.get_inputs()[0].name: batch})[0]
    prediction = prediction.reshape(prediction.shape[-2:]).astype(np.float32)
    if sigmoid:
        prediction = 1.0 / (1.0 + np.exp(-prediction))
    low, high = float(prediction.min()), float(prediction.max())
    prediction = (prediction - low) / max(high - low, 1e-6)
    mask = Image.fromarray((prediction * 255).astype(np.uint8))
    return np.asarray(mask.resize((rgb.shape[1], rgb.shape[0]), Image.LANCZOS), np.uint8)


def classical_mask(rgb: np.ndarray) -> np.ndarray:
    """Subject mask with no weights: border colour key, GrabCut refinement, cleanup.

    rgb : (h, w, 3) uint8 -> alpha (h, w) uint8 in {0, 255}
    """
    pixels = rgb.astype(np.float32)
    border = np.concatenate([
        pixels[:BORDER_PIXELS].reshape(-1, 3), pixels[-BORDER_PIXELS:].reshape(-1, 3),
        pixels[:, :BORDER_PIXELS].reshape(-1, 3), pixels[:, -BORDER_PIXELS:].reshape(-1, 3),
    ])
    background = np.median(border, axis=0)
    spread = float(np.median(np.linalg.norm(border - background, axis=1)))
    distance = np.linalg.norm(pixels - background, axis=2)
    keyed = distance > max(KEY_DISTANCE, 3.0 * spread)
    mask = _grabcut(rgb, keyed) if keyed.any() else keyed
    return (_clean(mask) * 255).astype(np.uint8)


def _grabcut(rgb: np.ndarray, keyed: np.ndarray) -> np.ndarray:
    """Refine a colour-key mask with GrabCut; the key itself when OpenCV is absent."""
    try:
        import cv2
    except ImportError:
        return keyed
    labels = np.where(keyed, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[:BORDER_PIXELS], labels[-BORDER_PIXELS:] = cv2.GC_BGD, cv2.GC_BGD
    labels[:, :BORDER_PIXELS], labels[:, -BORDER_PIXELS:] = cv2.GC_BGD, cv2.GC_BGD
    # Pixels far from the border colour are certain subject: GrabCut may not drop them.
    core = ndimage.binary_erosion(keyed, iterations=2)
    labels[core] = cv2.GC_FGD
    if not core.any():
        return keyed
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(rgb[:, :, ::-1].copy(), labels, None, background_model, foreground_model,
                    3, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return keyed
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _clean(mask: np.ndarray) -> np.ndarray:
    """Drop specks (components under 2% of the largest) and fill holes."""
    labelled, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labelled, index=np.arange(1, count + 1))
    keep = np.flatnonzero(sizes >= 0.02 * sizes.max()) + 1
    return ndimage.binary_fill_holes(np.isin(labelled, keep))


def resize_foreground(rgba: np.ndarray, ratio: float) -> np.ndarray:
    """Crop to the subject, pad square, and pad again so it spans ``ratio`` of the side.

    rgba : (h, w, 4) uint8 with a non-empty alpha -> (s, s, 4) uint8, subject centred
    Follows upstream TripoSR's resize_foreground, including its crop to [min, max) rows and
    columns of the alpha > 0 box, so conditioning images match upstream's pixel for pixel.
    """
    if not 0.0 < ratio <= 1.0:
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE, f"foreground ratio {ratio} is outside (0, 1]",
            field="parameters.foreground_ratio",
        )
    rows, cols = np.nonzero(rgba[:, :, 3] > 0)
    if rows.size == 0:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, "the cut-out is empty", field="images"
        )
    crop = rgba[rows.min() : rows.max(), cols.min() : cols.max()]
    if crop.size == 0:  # a one-pixel-wide subject: keep that row/column
        crop = rgba[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(crop.shape[0], crop.shape[1])
    square = _pad_centred(crop, side)
    return _pad_centred(square, int(side / ratio))


def _pad_centred(image: np.ndarray, side: int) -> np.ndarray:
    top, left = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
    out = np.zeros((side, side, image.shape[2]), image.dtype)
    out[top : top + image.shape[0], left : left + image.shape[1]] = image
    return out


def composite_on_grey(rgba: np.ndarray, grey: float = 0.5) -> np.ndarray:
    """Flatten (h, w, 4) uint8 onto a grey background -> (h, w, 3) uint8 (upstream's rounding)."""
    pixels = rgba.astype(np.float32) / 255.0
    alpha = pixels[:, :, 3:4]
    flat = pixels[:, :, :3] * alpha + (1.0 - alpha) * grey
    return (flat * 255.0).astype(np.uint8)
