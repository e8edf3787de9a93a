"""Compile the geometry pipeline's numba kernels once, ahead of the first real job.

numba compiles a kernel on its first call and caches the machine code on disk (``cache=True``),
so only the first process after an install (or a source change) pays: about 45 s on a 2-core
machine, 70 s on some GPU boxes. Paid inside a job, that looked like a 71 s decimation of a
200k-face mesh. ``warm_up`` runs the real pipeline on small inputs that take every kernel
path (vertex colours, colour and material fields, an incoming texture with kept UVs, painted
views, the parallel slab decimation of large meshes, inner-shell views, the LOD chain) and the
box packer of many-chart meshes, so setup (``dreamcad-backend warmup``, run by
scripts/setup_env.sh) and ``serve`` start-up pay it instead. Once cached it takes ~2 s.

On a CUDA device the heavy stages are torch code (geometry_path.py) that ``torch.compile`` and
Triton build on its first call in each process: the decimator's regions, the dilation kernel and
its exactness check. ``devices`` runs the same inputs there too (``serve`` passes its workers'
devices), so the first job on a GPU server does not pay that build either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from backend import job_priority
from backend.geometry import geometry_path, uv_pack
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import PaintedViews, RawAsset, orthographic_camera
from backend.geometry.tolerances import PARALLEL_SWEEP_FACES
from backend.torch_loaded import loaded_torch

log = logging.getLogger(__name__)


def _sphere(min_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere with at least ``min_faces`` faces, closed at the poles (no trimesh needed)."""
    rings = int(np.ceil(np.sqrt(min_faces / 4))) + 2
    segments = 2 * rings
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    body = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0.0, 1.0, 0.0]], body, [[0.0, -1.0, 0.0]]]).astype(np.float32)
    bottom = len(vertices) - 1
    faces = []
    for j in range(segments):
        k = (j + 1) % segments
        faces.append((0, 1 + k, 1 + j))
        for i in range(rings - 2):
            a, b = 1 + i * segments + j, 1 + i * segments + k
            c, d = a + segments, b + segments
            faces += [(a, b, d), (a, d, c)]
        last = 1 + (rings - 2) * segments
        faces.append((bottom, last + j, last + k))
    return vertices, np.asarray(faces, dtype=np.int64)


def _color(points: np.ndarray) -> np.ndarray:
    return (0.5 + 0.5 * np.sin(3.0 * points)).astype(np.float32)


def _material(points: np.ndarray) -> np.ndarray:
    return np.full((len(points), 2), (0.6, 0.1), dtype=np.float32)


def _views() -> PaintedViews:
    """Two small views (front, right; one with alpha) of the unit sphere."""
    front = orthographic_camera(np.eye(3), np.zeros(3), 12.0, (16.0, 16.0))
    right = orthographic_camera(np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]), np.zeros(3),
                                12.0, (16.0, 16.0))  # fmt: skip
    images = np.full((2, 32, 32, 4), 200, np.uint8)
    images[1, :8, :, 3] = 0
    return PaintedViews(images, np.stack([front, right]), np.array([1.0, 0.5]))


def _inputs() -> list[tuple[str, RawAsset, PipelineOptions]]:
    big_v, big_f = _sphere(PARALLEL_SWEEP_FACES + 8_000)
    small_v, small_f = _sphere(6_000)
    # A second sphere inside the first: two patches, so the inner-shell views are drawn.
    shelled_v = np.concatenate([small_v, small_v * 0.5])
    shelled_f = np.concatenate([small_f, small_f + len(small_v)])
    uvs = np.stack([np.arctan2(small_v[:, 2], small_v[:, 0]) / (2 * np.pi) + 0.5,
                    0.5 - 0.5 * small_v[:, 1]], -1).astype(np.float32)  # fmt: skip
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[::8] = 255
    return [
        ("vertex colours, two-thread decimation",
         RawAsset(big_v, big_f, vertex_colors=_color(big_v)),
         PipelineOptions(target_faces=20_000, texture_size=256)),
        ("colour and material fields, a hidden inner shell, LODs",
         RawAsset(shelled_v, shelled_f, color_field=_color, material_field=_material),
         PipelineOptions(target_faces=2_000, texture_size=256, lods=2)),
        ("painted views",
         RawAsset(small_v, small_f, views=_views()),
         PipelineOptions(target_faces=2_000, texture_size=256)),
        ("incoming texture, kept UVs",
         RawAsset(small_v, small_f, uvs=uvs, texture=texture),
         PipelineOptions(target_faces=2_000, texture_size=256, keep_uvs=True)),
    ]  # fmt: skip


def _device_inputs() -> list[tuple[str, RawAsset, PipelineOptions]]:
    """The CPU's inputs, and one large enough that the device decimator prices its edges in
    slices (over ``torch_qem.MIN_DEVICE_SLICE`` edges: a model's 800k-face surface), which
    are regions of their own."""
    from backend.geometry import torch_qem

    big_v, big_f = _sphere(int(torch_qem.MIN_DEVICE_SLICE / 1.5 * 1.25))  # edges = 1.5 faces
    return [
        *_inputs(),
        ("a large mesh, the decimator's sliced pricing",
         RawAsset(big_v, big_f, vertex_colors=_color(big_v)),
         PipelineOptions(target_faces=20_000, texture_size=256)),
    ]  # fmt: skip


def device_needs_warm_up(device: str) -> bool:
    """Whether jobs on ``device`` run compiled torch stages: a CUDA device with Triton, or any
    device with the torch path and compiling forced (``DREAMCAD_GEOMETRY_PATH=torch``,
    ``DREAMCAD_COMPILE=1``). The CPU's numba kernels are warmed in any case."""
    from backend.torch_compile import should_compile

    return geometry_path.chosen(device) == "torch" and should_compile(device)


def warm_up(
    report: Callable[[str, float], None] | None = None, devices: Sequence[str] = ()
) -> float:
    """Run the pipeline on each warm-up input, on the CPU and then on each of ``devices`` that
    runs compiled torch stages; returns the seconds it took in all.

    ``report(label, seconds)`` is called after each input (for a CLI line or a log entry).
    """
    for device in devices:  # a device that cannot run jobs is refused before any work
        PipelineOptions(device=device).check()
    start = time.perf_counter()
    runs = [("", "cpu", _inputs)] + [(f" on {d}", d, _device_inputs) for d in dict.fromkeys(devices)
                                     if device_needs_warm_up(d)]  # fmt: skip
    for suffix, device, inputs in runs:
        for label, raw, options in inputs():
            job_priority.give_way()  # in serve's background thread: after any running job
            began = time.perf_counter()
            run_pipeline(raw, replace(options, device=device))
            if report is not None:
                report(label + suffix, time.perf_counter() - began)
    if len(runs) > 1 and (torch := loaded_torch()) is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()  # the large input's buffers: give the models their memory back
    # Meshes cut into more than MAX_SHAPE_CHARTS charts are packed by box instead.
    triangle = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    uv_pack.pack_boxes(triangle, np.zeros(1, np.int64), 1, 256, 4)
    total = time.perf_counter() - start
    log.info("geometry kernels ready in %.1f s", total)
    return total
