"""Runs one generation end to end: load the model, generate, run the geometry pipeline.

Shared by the queue's workers and by ``dreamcad-backend generate`` (no server), so both produce
the same asset and the same manifest. Any failure becomes a coded error (``error_from_exception``):
cancellation, missing weights, CUDA out of memory, a model bug, a geometry bug.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backend import __version__
from backend.cancellation import Cancelled, CancelToken
from backend.images import encode_png
from backend.jobs.progress import ProgressTracker
from backend.models.base import GenerationRequest
from backend.models.registry import ModelCache
from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import Manifest, Progress

log = logging.getLogger(__name__)

OnProgress = Callable[[Progress, bytes | None], None]
PREVIEW_MIN_INTERVAL_S = 1.0  # previews are small, but not every step needs one


@dataclass(frozen=True)
class JobSpec:
    """Everything one run needs, already decoded and checked."""

    model: str
    request: GenerationRequest
    output_format: str = "glb"
    pbr: bool = True
    name: str = ""


@dataclass(frozen=True)
class JobOutput:
    manifest: Manifest
    asset: bytes
    preview: bytes | None


def run_job(
    cache: ModelCache, spec: JobSpec, on_progress: OnProgress, cancel: CancelToken
) -> JobOutput:
    """Generate ``spec`` on ``cache``'s device; report progress; raise on failure."""
    from backend.geometry.pipeline import PipelineOptions, run_pipeline

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
    started = time.perf_counter()
    model_progress("load", 0, 1, f"loading {spec.model}")
    adapter = cache.acquire(spec.model)
    timings["load"] = time.perf_counter() - started
    model_progress("load", 1, 1, f"{spec.model} ready on {cache.device}")

    started = time.perf_counter()
    raw = adapter.generate(spec.request, model_progress, cancel)
    timings["generate"] = time.perf_counter() - started
    cancel.raise_if_cancelled()

    options = PipelineOptions(
        target_faces=spec.request.target_faces,
        texture_size=spec.request.texture_size,
        pbr=spec.pbr,
        output_format=spec.output_format,
        name=spec.name or raw.name or spec.model,
    )
    result = run_pipeline(raw, options, pipeline_progress, cancel)
    timings.update({f"pipeline.{k}": v for k, v in result.timings_s.items()})
    manifest = Manifest(
        format=result.format,
        faces=result.faces,
        vertices=result.vertices,
        bbox_min=tuple(float(v) for v in result.bbox_min),
        bbox_max=tuple(float(v) for v in result.bbox_max),
        seed=spec.request.seed,
        model=spec.model,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        peak_vram_mb=_peak_vram_mb(cache.device),
        warnings=tuple(raw.warnings) + tuple(result.warnings),
        quality={k: float(v) for k, v in result.quality.items()},
        backend_version=__version__,
    )
    return JobOutput(manifest=manifest, asset=result.asset, preview=result.preview)


def error_from_exception(error: BaseException) -> tuple[ErrorInfo, bool]:
    """(coded error, was it a cancellation) for anything a run raised."""
    if isinstance(error, Cancelled):
        return ProtocolError(ErrorCode.CANCELLED, "cancelled on request").info, True
    if isinstance(error, ProtocolError):
        return error.info, False
    if type(error).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(error):
        return ProtocolError(
            ErrorCode.CUDA_OUT_OF_MEMORY, f"GPU out of memory: {error}"
        ).info, False
    module = type(error).__module__
    code = ErrorCode.GEOMETRY_FAILED if ".geometry" in _origin(error) else ErrorCode.MODEL_FAILED
    log.error("job failed", exc_info=error)
    return ProtocolError(code, f"{module}.{type(error).__name__}: {error}").info, False


def _origin(error: BaseException) -> str:
    """The module path of the innermost frame of our own code that raised ``error``."""
    tb = error.__traceback__
    origin = ""
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        if name.startswith("backend."):
            origin = name
        tb = tb.tb_next
    return origin


def _torch_cuda(device: str):
    """torch.cuda when a model has already initialised CUDA on ``device``, else None.

    Models that never touch CUDA (the built-ins) must not pay for, or fail on, its start-up:
    the allocator's statistics exist only once CUDA is initialised.
    """
    if not device.startswith("cuda") or "torch" not in sys.modules:
        return None
    cuda = sys.modules["torch"].cuda
    return cuda if cuda.is_initialized() else None


def _reset_peak_vram(device: str) -> None:
    if cuda := _torch_cuda(device):
        cuda.reset_peak_memory_stats(device)


def _peak_vram_mb(device: str) -> float | None:
    """Peak memory torch allocated on ``device`` during the job (None: no CUDA used)."""
    if cuda := _torch_cuda(device):
        return round(cuda.max_memory_allocated(device) / 2**20, 1)
    return None
