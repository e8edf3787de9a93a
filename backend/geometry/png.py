"""PNG encoding of baked maps, fast: numpy row filtering and zlib deflate in pieces on threads.

Pillow's PNG writer runs its adaptive filter and one deflate stream per image on one core, and
two maps written from two threads overlapped little on our 2-core machine (0.25-0.28 s against
0.26-0.31 s one after the other). Here each image is cut into bands of rows; every band is
filtered (PNG filter 2, "Up": the byte above, with numpy) and deflated (zlib with the
run-length strategy) on its own thread, since numpy's subtraction and zlib release the GIL.
The bands' raw deflate streams end on a sync flush, so they join into one zlib stream; its
Adler-32 is combined from the bands' own.

Why Up + Z_RLE: on our dilated bake output (smooth charts, repeated gutter texels) it is both
faster and smaller than Pillow's level 1 (800k-triangle blob, 2048 px: base colour 1.31 vs
1.70 MB, normal map 1.13 vs 1.59 MB, ~50 vs ~140 ms each on one core). Its weak case is
content that repeats at a distance (tiled patterns), which LZ77 matches find and RLE does not.

Images: (h, w) or (h, w, c) uint8, c in 1..4 (grey, grey + alpha, RGB, RGBA), 8 bits.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
FILTER_UP = 2
BAND_BYTES = 1 << 20  # ~1 MiB of pixels per band: 8 bands per 2048 px RGB map
ADLER_BASE = 65521
ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, no dictionary; 0x7801 % 31 == 0

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's threads are gone: start a new pool there when needed
    (submitting to the inherited one would wait forever)."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_pool)


def _usable_cores() -> int:
    """Cores this process may run on (its affinity on Linux, else all)."""
    if hasattr(os, "sched_getaffinity"):  # Linux only
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _shared_pool() -> ThreadPoolExecutor:
    """One process-wide pool with a thread per usable core (threads start once, not per map)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = _usable_cores()
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="png")
        return _pool


def _as_hwc(image: np.ndarray) -> np.ndarray:
    """(h, w, c) uint8 view of an (h, w) or (h, w, c) image, checked."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in COLOUR_TYPES or image.dtype != np.uint8:
        raise ValueError(f"expected (h, w[, 1..4]) uint8, got {image.shape} {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("an image needs at least one pixel")
    return image


def _bands(height: int, row_bytes: int, band_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of about ``band_bytes`` each, covering 0..height."""
    rows = max(1, band_bytes // max(row_bytes, 1))
    return [(start, min(start + rows, height)) for start in range(0, height, rows)]


def _deflate_band(image: np.ndarray, start: int, stop: int, last: bool) -> tuple[bytes, int, int]:
    """(raw deflate bytes, Adler-32, length) of rows start..stop filtered with Up."""
    _height, width, channels = image.shape
    filtered = np.empty((stop - start, 1 + width * channels), np.uint8)
    filtered[:, 0] = FILTER_UP
    pixels = filtered[:, 1:].reshape(stop - start, width, channels)
    first = start
    if start == 0:  # the row above the first is zeros: Up leaves it as is
        pixels[0] = image[0]
        first = 1
    np.subtract(image[first:stop], image[first - 1 : stop - 1], out=pixels[first - start :])
    data = memoryview(filtered).cast("B")
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_RLE)
    ending = zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    body = compressor.compress(data) + compressor.flush(ending)
    return body, zlib.adler32(data), len(data)


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of A + B from A's, B's and len(B): B's running sums start ``a(A) - 1`` higher,
    so a adds a(B) - 1 and b adds b(B) + len(B) * (a(A) - 1)."""
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % ADLER_BASE
    return (b << 16) | a


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(payload, zlib.crc32(kind))
    )


def encode_many(
    images: Sequence[np.ndarray], pool: Executor | None = None, band_bytes: int = BAND_BYTES
) -> list[bytes]:
    """PNG bytes of each image; every band of every image is queued at once, so two maps on
    two cores (or eight on sixteen) keep all of them busy. ``pool`` defaults to a shared one;
    images of one band are encoded on the calling thread."""
    prepared = [_as_hwc(np.asarray(image)) for image in images]
    plans = [_bands(im.shape[0], im.shape[1] * im.shape[2], band_bytes) for im in prepared]
    work = [
        (im, start, stop, index == len(plan) - 1)
        for im, plan in zip(prepared, plans, strict=True)
        for index, (start, stop) in enumerate(plan)
    ]
    if len(work) > 1:
        executor = pool or _shared_pool()
        futures = [executor.submit(_deflate_band, *item) for item in work]
        results = iter([future.result() for future in futures])
    else:
        results = iter([_deflate_band(*item) for item in work])
    encoded = []
    for image, plan in zip(prepared, plans, strict=True):
        height, width, channels = image.shape
        header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
        parts = [SIGNATURE, _chunk(b"IHDR", header)]
        checksum = 1  # Adler-32 of nothing
        for index in range(len(plan)):
            body, adler, length = next(results)
            checksum = adler32_combine(checksum, adler, length)
            parts.append(_chunk(b"IDAT", ZLIB_HEADER + body if index == 0 else body))
        parts.append(_chunk(b"IDAT", struct.pack(">I", checksum)))
        parts.append(_chunk(b"IEND", b""))
        encoded.append(b"".join(parts))
    return encoded


def encode(image: np.ndarray, pool: Executor | None = None, band_bytes: int = BAND_BYTES) -> bytes:
    """PNG bytes of one (h, w[, c]) uint8 image, its bands deflated side by side."""
    return encode_many([image], pool, band_bytes)[0]
