"""png.py: lossless round trips, a valid zlib stream across bands, the Adler-32 combination."""

from __future__ import annotations

import io
import os
import select
import signal
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from backend.geometry import png


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, each chunk's CRC checked."""
    assert data[:8] == png.SIGNATURE
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, payload = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + payload), kind
        chunks.append((kind, payload))
        at += 12 + length
    return chunks


def _smooth_map(size: int, channels: int) -> np.ndarray:
    """A bake-like map: smooth colour inside a disc, a flat gutter colour outside it."""
    y, x = np.mgrid[0:size, 0:size] / size
    layers = [np.sin(6 * x + k) * np.cos(4 * y - k) for k in range(channels)]
    image = np.clip(128 + 100 * np.stack(layers, axis=-1), 0, 255).astype(np.uint8)
    image[(x - 0.5) ** 2 + (y - 0.5) ** 2 > 0.2] = 40
    return image


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 1), (64, 31, 2), (50, 70, 3), (9, 1, 4)])
@pytest.mark.parametrize("band_bytes", [1, 200, png.BAND_BYTES])
def test_round_trip_is_pixel_identical(shape, band_bytes):
    rng = np.random.default_rng(sum(shape) + band_bytes)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(png.encode(image, band_bytes=band_bytes))))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, image.reshape(decoded.shape))
    assert decoded.size == image.size


def test_bands_join_into_one_checked_zlib_stream():
    image = _smooth_map(96, 3)
    data = png.encode(image, band_bytes=1000)  # 3 rows a band: 32 bands
    chunks = _chunks(data)
    assert [kind for kind, _ in chunks][:2] == [b"IHDR", b"IDAT"] and chunks[-1][0] == b"IEND"
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, colour) == (96, 96, 8, 2)
    stream = b"".join(payload for kind, payload in chunks if kind == b"IDAT")
    rows = np.frombuffer(zlib.decompress(stream), np.uint8)  # checks the combined Adler-32
    rows = rows.reshape(96, 1 + 96 * 3)
    assert (rows[:, 0] == png.FILTER_UP).all()
    unfiltered = np.cumsum(rows[:, 1:], axis=0, dtype=np.uint8)  # Up: running sum down columns
    np.testing.assert_array_equal(unfiltered.reshape(image.shape), image)


def test_strided_views_and_many_images_on_a_given_pool():
    rgba = _smooth_map(64, 4)
    views = [rgba[..., :3], rgba[:, ::2], rgba[..., 3]]  # none of them contiguous
    with ThreadPoolExecutor(max_workers=3) as pool:
        encoded = png.encode_many(views, pool=pool, band_bytes=500)
    for view, data in zip(views, encoded, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(data)))
        np.testing.assert_array_equal(decoded, view)


@pytest.mark.parametrize("split", [0, 1, 7, 65521, 200_000])
def test_adler32_combine_matches_zlib(split):
    data = np.random.default_rng(split).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    first, second = data[:split], data[split:]
    combined = png.adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(data)


def test_smooth_maps_no_larger_than_pillows_fast_level():
    image = _smooth_map(512, 3)
    pillow = io.BytesIO()
    Image.fromarray(image).save(pillow, format="PNG", compress_level=1)
    assert len(png.encode(image)) <= len(pillow.getvalue())


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), np.uint16), np.zeros((0, 4, 3), np.uint8)],
)
def test_rejects_what_png_cannot_hold(bad):
    with pytest.raises(ValueError):
        png.encode(bad)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_encodes_with_a_pool_of_its_own():
    image = _smooth_map(256, 3)
    expected = png.encode(image, band_bytes=4096)  # the parent's pool now has live threads
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            same = png.encode(image, band_bytes=4096) == expected
            os.write(write, b"1" if same else b"0")
        finally:
            os._exit(0)
    os.close(write)
    # A child that waits on the inherited pool's dead threads never answers: give it 20 s.
    ready, _, _ = select.select([read], [], [], 20.0)
    answer = os.read(read, 1) if ready else b""
    if not ready:
        os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    os.close(read)
    assert answer == b"1"
