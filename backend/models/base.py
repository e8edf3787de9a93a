"""The one contract every model family implements: a card, a template, and a few hooks.

An adapter class *is* its card: class attributes say what the model is (id, tasks, parameter
schema, weights, components, VRAM, licence, stage weights). Reading a card imports neither
torch nor any model code, so the catalogue (``dreamcad-backend models``, the hello reply) is
cheap; heavy imports happen in the hooks, when a model loads.

:class:`ModelAdapter` owns the life cycle and calls the hooks:

- ``load(device, dtype)``: dtype name checked, weights present, CUDA out-of-memory mapped, then
  ``_load(device, dtype)``;
- ``generate(request, progress, cancel)``: the not-loaded guard, parameters resolved against the
  schema, image inputs cut out through the one shared path (``background`` parameter), then
  ``_generate(request, progress, cancel)``, out-of-memory mapped;
- ``unload()``: ``_release()``, then the CUDA cache emptied;
- ``check_inputs(request)``: task, image count, prompt, parameters, then ``_check(request)``.

Composite models (text -> image -> 3D) take their inner models with :meth:`inner_model`, from
the worker's :class:`~backend.models.registry.ModelCache`, so nested models count against the
same VRAM budget and are shared with direct jobs. Each family's ``testing.py`` writes tiny random
weights in the official layout for the contract suite (tests/backend/models/test_contract.py).
Adapters never import the server or the job queue.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.common.device_errors import DEFAULT_HINT, typed_device_errors
from backend.torch_loaded import loaded_torch
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import DEFAULT_FACES, DEFAULT_TEXTURE_SIZE, ModelInfo, ParameterSchema
from shared_protocol.parameters import resolve_parameters

if TYPE_CHECKING:
    from backend.models.registry import ModelRegistry

# The dtype names a model can be loaded in; the service picks one (``cuda_dtype`` on a GPU).
DTYPE_NAMES = ("float32", "float16", "bfloat16")
IMAGE_TASKS = ("image", "multi_image")


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
class ImagePixels:
    """A decoded input image: ``pixels`` (h, w, 4) uint8 RGBA, and the view it shows.

    Inside ``_generate`` the alpha channel is the subject mask the shared cut-out made."""

    pixels: np.ndarray
    view: str = "front"


@dataclass(frozen=True)
class GenerationRequest:
    """What a model is asked to do, decoded and checked; ``parameters`` has every default."""

    task: str
    prompt: str = ""
    images: tuple[ImagePixels, ...] = ()
    seed: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    target_faces: int = DEFAULT_FACES
    texture_size: int = DEFAULT_TEXTURE_SIZE
    # Tasks texture and optimize: the artist's mesh (read from the sent GLB, or a finished
    # job's kept raw output). None at admission, where the geometry is not read yet.
    mesh: RawAsset | None = None


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


class InnerModels(Protocol):
    """Where a composite model gets its inner models: the worker's model cache."""

    registry: ModelRegistry

    def using(self, model_id: str) -> contextlib.AbstractContextManager[ModelAdapter]: ...

    def clear(self) -> None: ...


def weights_env_var(model_id: str) -> str:
    """``DREAMCAD_WEIGHTS_<ID>``: the id upper-cased, other characters as ``_``."""
    return "DREAMCAD_WEIGHTS_" + re.sub(r"[^A-Za-z0-9]", "_", model_id).upper()


class ModelAdapter(abc.ABC):
    """Base class of a model family's adapter: set the card attributes, implement the hooks."""

    # --- the card (class attributes; reading them imports nothing heavy) ---------------------
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
    # Components the model cannot run without (e.g. a conditioner from another repo): counted
    # in ``weights_present`` and fetched by a plain `download ID`.
    required_components: ClassVar[tuple[str, ...]] = ()
    max_images: ClassVar[int] = 1
    # The dtype the service loads the model in on a GPU (CPU: always float32): what the
    # model's upstream runs in by default, so speed and memory match what users expect.
    cuda_dtype: ClassVar[str] = "float32"
    # Shares of the progress bar per stage the model reports, e.g. {"sample": 0.8, "decode": 0.2}.
    stage_weights: ClassVar[dict[str, float]] = {}
    # What the out-of-memory error suggests lowering (the model's own memory knobs).
    out_of_memory_hint: ClassVar[str] = DEFAULT_HINT

    def __init__(self, weights_dir: Path | None = None) -> None:
        """``weights_dir`` is the local folder holding ``weights.files`` (None: no weights)."""
        self.weights_dir = weights_dir
        # Where each found component's files are (set by the registry); absent: not found.
        self.component_dirs: dict[str, Path] = {}
        # Set by the registry that made us / the cache that loaded us (composite models).
        self.registry: ModelRegistry | None = None
        self.models: InnerModels | None = None
        self._owns_models = False  # True: ``models`` is our private cache (see inner_model)
        self.device: str | None = None  # None: not loaded
        self.dtype = "float32"

    # --- the card as data ---------------------------------------------------------------------

    def weights_present(self) -> bool:
        """The main weights and every required component are on this machine."""
        return not self.missing_weights()

    def missing_weights(self) -> list[str]:
        """What is missing: "weights" and/or required component names."""
        missing = []
        if self.weights is not None and (
            self.weights_dir is None
            or not all((self.weights_dir / f.path).is_file() for f in self.weights.files)
        ):
            missing.append("weights")
        missing += [name for name in self.required_components if name not in self.component_dirs]
        return missing

    def info(self, *, fits_gpu: bool = True, reason: str = "") -> ModelInfo:
        missing = self.missing_weights()
        present = not missing
        if missing and not reason:
            reason = f"{' and '.join(missing)} missing: run `dreamcad-backend download {self.id}`"
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
            download_bytes=self.download_bytes(),
            license_gated=bool(self.weights and self.weights.gated),
            components=tuple(n for n in self.components if n not in self.required_components),
        )

    @classmethod
    def download_bytes(cls) -> int:
        """What a plain ``download`` fetches: the weights and required components (declared)."""
        sources = [cls.weights] if cls.weights else []
        sources += [cls.components[name] for name in cls.required_components]
        return sum(sum(f.size for f in s.files) + (s.approx_size if s.folders else 0)
                   for s in sources)  # fmt: skip

    @property
    def loaded(self) -> bool:
        return self.device is not None

    @property
    def catalogue(self) -> ModelRegistry:
        """The registry that made us (the installed models when we were made by hand): what a
        composite model checks its inner models' cards against."""
        if self.registry is None:
            from backend.models.registry import ModelRegistry

            self.registry = ModelRegistry()
        return self.registry

    # --- the template (final: subclasses implement the hooks below) ---------------------------

    def check_inputs(self, request: GenerationRequest) -> GenerationRequest:
        """Reject a request this model cannot run, before it is queued; return it resolved.

        Fields are named relative to the request (``images``, ``parameters.steps``)."""
        if request.task not in self.tasks:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_TASK,
                f"model {self.id!r} does not do task {request.task!r}; it does "
                f"{', '.join(self.tasks)}",
                field="task",
            )
        if request.task in IMAGE_TASKS and not request.images:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD,
                f"task {request.task!r} needs at least one image",
                field="images",
            )
        if len(request.images) > self.max_images:
            raise ProtocolError(
                ErrorCode.TOO_MANY_FRAMES,
                f"model {self.id!r} takes at most {self.max_images} images, got "
                f"{len(request.images)}",
                field="images",
            )
        if request.task == "text" and not request.prompt.strip():
            raise ProtocolError(
                ErrorCode.MISSING_FIELD, "task 'text' needs a prompt", field="prompt"
            )
        resolved = dataclasses.replace(
            request, parameters=resolve_parameters(self.parameters, request.parameters)
        )
        self._check(resolved)
        return resolved

    def load(self, device: str, dtype: str = "float32") -> None:
        """Load the weights onto ``device`` ("cpu", "cuda:0") in ``dtype`` (a DTYPE_NAMES name)."""
        if dtype not in DTYPE_NAMES:
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"{self.id}: unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}",
            )
        if missing := self.missing_weights():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{' and '.join(missing)} of {self.id!r} not on this machine",
                hint=f"Run `dreamcad-backend download {self.id}`, or point "
                f"{weights_env_var(self.id)} (or `--weights {self.id}=PATH`) at a folder "
                "holding them.",
            )
        with typed_device_errors(self.id, self.out_of_memory_hint):
            self._load(device, dtype)
        self.device, self.dtype = device, dtype

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        """Run the model; hooks call ``progress`` and ``cancel.raise_if_cancelled()`` each step."""
        if self.device is None:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"{self.id} is not loaded",
                hint="Call load() first (the worker's model cache does).",
            )
        request = dataclasses.replace(
            request, parameters=resolve_parameters(self.parameters, request.parameters)
        )
        cancel.raise_if_cancelled()
        if request.images and any(p.name == "background" for p in self.parameters):
            from backend.models.common.background import prepare_images  # scipy, PIL: not
            # needed to read a card

            request = dataclasses.replace(
                request, images=prepare_images(request.images, request.parameters["background"])
            )
        with typed_device_errors(self.id, self.out_of_memory_hint):
            return self._generate(request, progress, cancel)

    def unload(self) -> None:
        """Free the model's memory (device and host); safe to call when not loaded."""
        device, self.device = self.device, None
        self._release()
        if self._owns_models and self.models is not None:
            self.models.clear()
            self.models, self._owns_models = None, False
        torch = loaded_torch() if device is not None and device.startswith("cuda") else None
        if torch is not None:
            torch.cuda.empty_cache()

    @contextlib.contextmanager
    def inner_model(self, model_id: str) -> Iterator[ModelAdapter]:
        """Another installed model, loaded on our device, for a composite's stage.

        It comes from the worker's model cache (inside its VRAM budget, shared with direct
        jobs). An adapter used outside any cache (a script, a benchmark) gets a private cache
        on its own device, made on first use and emptied by ``unload``."""
        if self.models is None:
            from backend.models.registry import ModelCache

            self.models = ModelCache(self.catalogue, self.device or "cpu", None)
            self._owns_models = True
        with self.models.using(model_id) as adapter:
            yield adapter

    # --- hooks --------------------------------------------------------------------------------

    def _check(self, request: GenerationRequest) -> None:  # noqa: B027 - optional hook
        """Model-specific checks beyond the template's; ``request.parameters`` is resolved."""

    @abc.abstractmethod
    def _load(self, device: str, dtype: str) -> None:
        """Read the weights (``self.weights_dir``) onto ``device``; import heavy code here."""

    @abc.abstractmethod
    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        """One run: resolved parameters, cut-out images; report stages from stage_weights."""

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Drop what ``_load`` made (set the model attributes to None)."""


@contextlib.contextmanager
def inner_errors(
    role: str, model_id: str, field: str, ours: Mapping[str, str] | None = None
) -> Iterator[None]:
    """A composite's inner request errors, named in the outer request: a field the inner model
    names (its ``images[0]``) was never sent by our client, so it becomes ``ours[field]`` (the
    parameter we set it from) or else ``field`` (the parameter that chose the inner model), and
    the message says which model."""
    try:
        yield
    except ProtocolError as error:
        if error.field is None:
            raise
        raise ProtocolError(
            error.code,
            f"{role} {model_id!r}: {error}",
            field=(ours or {}).get(error.field, field),
            hint=error.hint,
        ) from error
