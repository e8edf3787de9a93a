"""Runs one generation end to end: load the model, generate, run the geometry pipeline.

Shared by the queue's workers and by ``dreamcad-backend generate`` (no server), so both produce
the same asset and the same manifest. Any failure becomes a coded error (``error_from_exception``):
cancellation, missing weights, CUDA out of memory, a model bug, a geometry bug.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend import __version__
from backend.cancellation import Cancelled, CancelToken
from backend.geometry.overlap import Beside
from backend.geometry.raw_asset import RawAsset
from backend.geometry.raw_store import raw_arrays, write_raw
from backend.images import encode_png
from backend.jobs import result_files
from backend.jobs.game_ready import pipeline_options
from backend.jobs.progress import ProgressTracker
from backend.jobs.spec import JobSpec
from backend.jobs.stall_meter import StallMeter
from backend.models.base import ImagePixels
from backend.models.registry import ModelCache
from backend.torch_loaded import loaded_torch
from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import LodInfo, Manifest, Progress

log = logging.getLogger(__name__)

OnProgress = Callable[[Progress, bytes | None], None]
PREVIEW_MIN_INTERVAL_S = 1.0  # previews are small, but not every step needs one


@dataclass(frozen=True)
class JobOutput:
    manifest: Manifest
    asset: bytes
    preview: bytes | None
    extra_files: dict[str, bytes] = field(default_factory=dict)  # the manifest's extra_files


class ModelStageError(Exception):
    """A failure inside the model's load or generate (not a coded error)."""


class GeometryStageError(Exception):
    """A failure inside the geometry pipeline (not a coded error)."""


def run_job(
    cache: ModelCache,
    spec: JobSpec,
    images: tuple[ImagePixels, ...],
    on_progress: OnProgress,
    cancel: CancelToken,
    *,
    node: str | None = None,
    mesh: RawAsset | None = None,
    keep_raw: Path | None = None,
) -> JobOutput:
    """Generate ``spec`` on ``cache``'s device; report progress; raise on failure.

    ``node`` names the machine in the manifest (a Ray worker passes its node; default: the
    host name). ``mesh`` is the input mesh of tasks texture and optimize; ``keep_raw`` is where
    the model's raw output is kept for a later re-optimize (None: not kept).

    Uncoded failures come out as ModelStageError or GeometryStageError (their cause attached),
    decided by where they were raised, so ``error_from_exception`` can give the right code."""
    from backend.geometry.pipeline import run_pipeline

    cls = cache.registry.adapter_class(spec.model)
    tracker = ProgressTracker({"load": 0.1, **cls.stage_weights})
    last_preview = [0.0]

    def model_progress(
        stage: str, step: int, total: int, message: str = "", preview: np.ndarray | None = None
    ) -> None:
        cancel.raise_if_cancelled()
        png = None
        if preview is not None and time.monotonic() - last_preview[0] >= PREVIEW_MIN_INTERVAL_S:
            last_preview[0] = time.monotonic()
            png = encode_png(preview)
        on_progress(tracker.update("model", stage, step, total, message), png)

    def pipeline_progress(stage: str, step: int, total: int, message: str = "") -> None:
        cancel.raise_if_cancelled()
        on_progress(tracker.update("pipeline", stage, step, total, message), None)

    timings: dict[str, float] = {}
    _reset_peak_vram(cache.device)
    request = spec.generation_request(images, mesh)
    with _stage_errors(ModelStageError):
        started = time.perf_counter()
        model_progress("load", 0, 1, f"loading {spec.model}")
        with cache.using(spec.model) as adapter:
            timings["load"] = time.perf_counter() - started
            model_progress("load", 1, 1, f"{spec.model} ready on {cache.device}")
            started = time.perf_counter()
            raw = adapter.generate(request, model_progress, cancel)
            timings["generate"] = time.perf_counter() - started
    cancel.raise_if_cancelled()
    raw_mb = None
    writer = None
    if keep_raw is not None:
        started = time.perf_counter()
        with _stage_errors(GeometryStageError):  # it samples the colour source, as the bake does
            # written on its own thread while the pipeline runs
            writer = Beside(write_raw, raw_arrays(raw), keep_raw, name="keep-raw")
        timings["keep_raw"] = time.perf_counter() - started

    # a CUDA job's heavy geometry stages run there (geometry_path.py)
    options = pipeline_options(spec, raw, device=cache.device)
    try:
        with _stage_errors(GeometryStageError), StallMeter() as stalls:
            result = run_pipeline(raw, options, pipeline_progress, cancel)
    except BaseException:
        if writer is not None:  # the write never outlives the job; the pipeline's error wins
            writer.wait()
        raise
    if writer is not None:
        started = time.perf_counter()
        with _stage_errors(GeometryStageError):
            raw_mb = writer.result() / 2**20
        timings["keep_raw.wait"] = time.perf_counter() - started
    timings.update({f"pipeline.{k}": v for k, v in result.timings_s.items()})
    # the pipeline's garbage-collector pauses and its thread's time off the CPU (stall_meter.py)
    timings.update({f"stalls.{k}": v for k, v in stalls.figures().items()})
    figures = {k: float(v) for k, v in result.quality.items()}
    if raw_mb is not None:
        figures["raw_output_mb"] = round(raw_mb, 3)
    manifest = Manifest(
        format=result.format,
        faces=result.faces,
        vertices=result.vertices,
        bbox_min=tuple(float(v) for v in result.bbox_min),
        bbox_max=tuple(float(v) for v in result.bbox_max),
        seed=spec.seed,
        model=spec.model,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        peak_vram_mb=_peak_vram_mb(cache.device),
        warnings=tuple(raw.warnings) + tuple(result.warnings),
        quality=figures,
        backend_version=__version__,
        node=platform.node() if node is None else node,
        device=cache.device,
        extra_files=result_files.describe(raw.extra_files, raw.extra_file_frames, result.to_asset),
        lods=tuple(LodInfo(lod["name"], lod["faces"], lod["vertices"]) for lod in result.lods),
    )
    return JobOutput(
        manifest=manifest,
        asset=result.asset,
        preview=result.preview,
        extra_files=dict(raw.extra_files),
    )


@contextlib.contextmanager
def _stage_errors(wrapper: type[Exception]) -> Iterator[None]:
    """Uncoded exceptions of the block re-raised as ``wrapper`` (coded ones pass as they are)."""
    try:
        yield
    except (Cancelled, ProtocolError, MemoryError):
        raise
    except Exception as error:
        raise wrapper(f"{type(error).__module__}.{type(error).__name__}: {error}") from error


def escaped_exit(error: BaseException) -> BaseException | None:
    """The SystemExit or KeyboardInterrupt behind ``error``, if its chain holds one.

    An exit raised while native code runs (numba, a C extension) comes back as a SystemError
    with the exit as its cause; it still means "this thread is to die", not "this job failed",
    so the worker re-raises it and the supervisor's crash rule (a retry elsewhere) applies.
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, SystemExit | KeyboardInterrupt):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def error_from_exception(error: BaseException) -> tuple[ErrorInfo, bool]:
    """(coded error, was it a cancellation) for anything a run raised."""
    if isinstance(error, Cancelled):
        return ProtocolError(ErrorCode.CANCELLED, "cancelled on request").info, True
    if isinstance(error, ProtocolError):
        return error.info, False
    cause = error.__cause__ if isinstance(error, ModelStageError | GeometryStageError) else error
    if _is_cuda_out_of_memory(cause):
        return ProtocolError(
            ErrorCode.CUDA_OUT_OF_MEMORY, f"GPU out of memory: {cause}"
        ).info, False
    code = (
        ErrorCode.GEOMETRY_FAILED
        if isinstance(error, GeometryStageError)
        else ErrorCode.MODEL_FAILED
    )
    log.error("job failed", exc_info=error)
    return ProtocolError(code, str(error)).info, False


def _is_cuda_out_of_memory(error: BaseException | None) -> bool:
    """torch.cuda.OutOfMemoryError, looked up only if torch was ever imported."""
    torch = loaded_torch()
    return torch is not None and isinstance(error, torch.cuda.OutOfMemoryError)


def _torch_cuda(device: str):
    """torch.cuda when a model has already initialised CUDA on ``device``, else None.

    Models that never touch CUDA (the built-ins) must not pay for, or fail on, its start-up:
    the allocator's statistics exist only once CUDA is initialised.
    """
    torch = loaded_torch() if device.startswith("cuda") else None
    return torch.cuda if torch is not None and torch.cuda.is_initialized() else None


def _reset_peak_vram(device: str) -> None:
    if cuda := _torch_cuda(device):
        cuda.reset_peak_memory_stats(device)


def _peak_vram_mb(device: str) -> float | None:
    """Peak memory torch allocated on ``device`` during the job (None: no CUDA used)."""
    if cuda := _torch_cuda(device):
        return round(cuda.max_memory_allocated(device) / 2**20, 1)
    return None
