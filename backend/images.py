"""Decoding input images safely: bytes from the wire -> RGBA arrays, or a coded error.

Images come from anywhere, so this refuses what Pillow cannot open, what is not a still image
of a sane size, and decompression bombs, each with an error naming the request field.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from shared_protocol.errors import ErrorCode, ProtocolError

MAX_PIXELS = 64_000_000  # 8k x 8k: far above what any model consumes
MIN_SIDE = 8
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


def decode_image(data: bytes, field: str) -> tuple[np.ndarray, str]:
    """Return ((h, w, 4) uint8 RGBA, file suffix); raise INVALID_IMAGE naming ``field``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or ""
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ProtocolError(
                    ErrorCode.INVALID_IMAGE,
                    f"{field} is {width}x{height}; the limit is {MAX_PIXELS // 1_000_000} MP",
                    field=field,
                    hint="Downscale the image; models use at most 1-2k pixels per side.",
                )
            image.load()
    except ProtocolError:
        raise
    except Image.UnidentifiedImageError:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"{field} is not in an image format we read", field=field
        ) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as error:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"{field} is a damaged image: {error}", field=field
        ) from None
    if fmt not in SUFFIXES:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"{field} is {fmt or 'an unknown format'}", field=field
        )
    if min(width, height) < MIN_SIDE:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            f"{field} is {width}x{height}; each side needs at least {MIN_SIDE} pixels",
            field=field,
        )
    return np.asarray(image.convert("RGBA")), SUFFIXES[fmt]


def encode_png(pixels: np.ndarray) -> bytes:
    """(h, w, 3|4) uint8 -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()
