"""The one interface every model family implements, and the small types it speaks.

An adapter declares what it is (id, tasks, parameter schema, VRAM need, licence, where its
weights come from), checks a request up front (``check_inputs``), loads onto a device, turns a
:class:`GenerationRequest` into a :class:`RawAsset` while reporting progress and honouring
cancellation at every step, and unloads. Adapters are found through the ``dreamcad.models``
entry-point group (see registry.py), so a third-party package can add one. Adapters never import
the server or the job queue.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ModelInfo, ParameterSchema


@dataclass(frozen=True)
class WeightFile:
    """One file of a model's weights on the hub; ``sha256`` pins its content."""

    path: str
    sha256: str = ""
    size: int = 0


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights come from: a hub repo at a pinned revision, and which files."""

    repo_id: str
    revision: str
    files: tuple[WeightFile, ...] = ()
    gated: bool = False
    # Whole hub subfolders (a diffusers pipeline's folder: many small files whose list is the
    # folder's own business); each is present when its ``model_index.json`` is.
    folders: tuple[str, ...] = ()
    approx_size: int = 0  # bytes, for the disk check when ``folders`` hide the file sizes


@dataclass(frozen=True)
class InputImage:
    """A decoded input image: ``pixels`` (h, w, 4) uint8 RGBA, and the view it shows."""

    pixels: np.ndarray
    view: str = "front"


@dataclass(frozen=True)
class GenerationRequest:
    """What a model is asked to do, decoded and checked; ``parameters`` has every default."""

    task: str
    prompt: str = ""
    images: tuple[InputImage, ...] = ()
    seed: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    target_faces: int = 20_000
    texture_size: int = 1024


class ProgressCallback(Protocol):
    """Report ``step`` of ``total`` in ``stage``; an optional small RGB(A) uint8 preview."""

    def __call__(
        self,
        stage: str,
        step: int,
        total: int,
        message: str = "",
        preview: np.ndarray | None = None,
    ) -> None: ...


class ModelAdapter(abc.ABC):
    """Base class of a model family's adapter. Subclasses set the class attributes."""

    id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]]
    parameters: ClassVar[tuple[ParameterSchema, ...]] = ()
    vram_mb: ClassVar[int] = 0
    license: ClassVar[str]
    license_url: ClassVar[str] = ""
    weights: ClassVar[WeightsSource | None] = None
    # Optional parts with weights of their own, fetched with `download ID --with NAME` (e.g. a
    # texture model from another repo); found like the main weights (see registry.py).
    components: ClassVar[dict[str, WeightsSource]] = {}
    max_images: ClassVar[int] = 1
    # The dtype the service loads the model in on a GPU (CPU: always float32): what the
    # model's upstream runs in by default, so speed and memory match what users expect.
    cuda_dtype: ClassVar[str] = "float32"
    # Shares of the progress bar per stage the model reports, e.g. {"sample": 0.8, "decode": 0.2}.
    stage_weights: ClassVar[dict[str, float]] = {}

    def __init__(self, weights_dir: Path | None = None) -> None:
        """``weights_dir`` is the local folder holding ``weights.files`` (None: no weights)."""
        self.weights_dir = weights_dir
        # Where each found component's files are (set by the registry); absent: not found.
        self.component_dirs: dict[str, Path] = {}

    def weights_present(self) -> bool:
        if self.weights is None:
            return True
        if self.weights_dir is None:
            return False
        return all((self.weights_dir / f.path).is_file() for f in self.weights.files)

    def info(self, *, fits_gpu: bool = True, reason: str = "") -> ModelInfo:
        present = self.weights_present()
        if not present and not reason:
            reason = f"weights missing: run `dreamcad-backend download {self.id}`"
        return ModelInfo(
            id=self.id,
            name=self.name,
            tasks=self.tasks,  # type: ignore[arg-type]
            parameters=self.parameters,
            vram_mb=self.vram_mb,
            license=self.license,
            license_url=self.license_url,
            description=self.description,
            weights_repo=self.weights.repo_id if self.weights else "",
            weights_present=present,
            max_images=self.max_images,
            available=present and fits_gpu,
            unavailable_reason="" if present and fits_gpu else reason,
        )

    def check_inputs(self, request: GenerationRequest) -> None:
        """Reject a request this model cannot run, before it is queued. Extend, then call super."""
        if request.task not in self.tasks:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_TASK,
                f"model {self.id!r} does not do task {request.task!r}; it does {self.tasks}",
                field="body.task",
            )
        if request.task in ("image", "multi_image") and not request.images:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD,
                f"task {request.task!r} needs at least one image",
                field="body.images",
            )
        if len(request.images) > self.max_images:
            raise ProtocolError(
                ErrorCode.TOO_MANY_FRAMES,
                f"model {self.id!r} takes at most {self.max_images} images, got "
                f"{len(request.images)}",
                field="body.images",
            )
        if request.task == "text" and not request.prompt.strip():
            raise ProtocolError(
                ErrorCode.MISSING_FIELD, "task 'text' needs a prompt", field="body.prompt"
            )

    @abc.abstractmethod
    def load(self, device: str, dtype: str = "float32") -> None:
        """Load weights onto ``device`` ("cpu", "cuda:0"); raise WEIGHTS_MISSING if absent."""

    @abc.abstractmethod
    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        """Run the model; call ``progress`` and ``cancel.raise_if_cancelled()`` every step."""

    def unload(self) -> None:  # noqa: B027 - optional hook, most adapters override it
        """Free the model's memory (device and host). Default: nothing held."""


def resolve_parameters(
    schema: tuple[ParameterSchema, ...], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Check ``given`` against ``schema`` and fill defaults; errors name body.parameters.<name>."""
    known = {p.name: p for p in schema}
    for name in given:
        if name not in known:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"unknown parameter {name!r}; this model takes: {', '.join(known) or 'none'}",
                field=f"body.parameters.{name}",
            )
    resolved: dict[str, Any] = {}
    for name, spec in known.items():
        value = given.get(name, spec.default)
        resolved[name] = _check_parameter(spec, value)
    return resolved


def _check_parameter(spec: ParameterSchema, value: Any) -> Any:
    path = f"body.parameters.{spec.name}"
    expected = {"int": int, "float": (int, float), "bool": bool, "choice": str, "str": str}
    if (isinstance(value, bool) and spec.kind != "bool") or not isinstance(
        value, expected[spec.kind]
    ):
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER, f"{path} must be {spec.kind}, got {value!r}", field=path
        )
    if spec.kind == "choice" and value not in spec.choices:
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER,
            f"{path} must be one of {', '.join(spec.choices)}, got {value!r}",
            field=path,
        )
    if spec.kind in ("int", "float"):
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise ProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"{path} is {value}, outside [{spec.minimum}, {spec.maximum}]",
                field=path,
            )
        return float(value) if spec.kind == "float" else value
    return value
