"""Finds model adapters, locates their weights, and keeps loaded models within a VRAM budget.

Adapters are classes registered under the ``dreamcad.models`` entry-point group, so any
installed package can add one. An adapter's weights folder is, in order: the path given for it
(``--weights ID=PATH`` or ``DREAMCAD_WEIGHTS_<ID>``), else the Hugging Face cache's snapshot of
its pinned revision when every declared file is there; optional components (``components``)
the same way under ``ID:NAME`` / ``DREAMCAD_WEIGHTS_<ID>_<NAME>``. Nothing here downloads (see
download.py). ``ModelCache`` keeps models loaded between jobs on one device and unloads the least
recently used when a new one would overflow the budget; each load and unload is reported to the
registry's ``cache_listeners`` (the metrics count them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from backend.models.base import ModelAdapter, WeightsSource, weights_env_var
from shared_protocol.errors import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dreamcad.models"


@dataclass(frozen=True)
class CacheEvent:
    """A model loaded onto or unloaded from a device by a ModelCache."""

    kind: str  # "load" or "unload"
    model_id: str
    device: str
    seconds: float = 0.0  # how long the load took (0 for an unload)
    vram_mb: int = 0  # the model's declared VRAM


CacheListener = Callable[[CacheEvent], None]


DISTRIBUTION = "dreamcad"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def source_checkout_entry_points(pyproject: Path = PYPROJECT) -> list[metadata.EntryPoint]:
    """Our own plug-ins as ``pyproject.toml`` declares them, for a checkout run from source
    (``PYTHONPATH=repo``, no ``pip install``: a remote GPU box, a CI image) where no package
    metadata exists and the entry-point group would otherwise be empty."""
    import tomllib

    if not pyproject.is_file():
        return []
    table = tomllib.loads(pyproject.read_text())["project"].get("entry-points", {})
    return [
        metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)
        for name, value in table.get(ENTRY_POINT_GROUP, {}).items()
    ]


def model_entry_points(
    distribution: str = DISTRIBUTION, pyproject: Path = PYPROJECT
) -> list[metadata.EntryPoint]:
    """The installed ``dreamcad.models`` entry points; our own from pyproject.toml when
    ``distribution`` is not installed (third-party plug-ins still come from their metadata)."""
    entries = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        log.info("%s is not installed: its models are read from %s", distribution, pyproject)
        known = {entry.name for entry in entries}
        entries += [e for e in source_checkout_entry_points(pyproject) if e.name not in known]
    return entries


def discover_adapters(distribution: str = DISTRIBUTION) -> dict[str, type[ModelAdapter]]:
    """Every adapter class installed; a broken plug-in is logged and skipped, never fatal."""
    found: dict[str, type[ModelAdapter]] = {}
    for entry in model_entry_points(distribution):
        try:
            cls = entry.load()
        except Exception as error:  # a third-party plug-in must not take the backend down
            log.warning("model plug-in %s failed to import: %s", entry.value, error)
            continue
        if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
            log.warning("model plug-in %s is not a ModelAdapter subclass", entry.value)
            continue
        found[cls.id] = cls
    return dict(sorted(found.items()))


def hub_snapshot_dir(source: WeightsSource | None) -> Path | None:
    """The HF cache folder of ``source``'s pinned revision, if every declared file (and each
    declared folder's ``model_index.json``) is there."""
    if source is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    folder: Path | None = None
    paths = [f.path for f in source.files] + [f"{name}/model_index.json" for name in source.folders]
    for relative in paths:
        cached = try_to_load_from_cache(source.repo_id, relative, revision=source.revision)
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parents[len(Path(relative).parts) - 1]
    return folder


class ModelRegistry:
    """The installed adapters and where their weights are."""

    def __init__(
        self,
        adapters: Mapping[str, type[ModelAdapter]] | None = None,
        weights_paths: Mapping[str, Path] | None = None,
    ) -> None:
        self.adapters = dict(adapters) if adapters is not None else discover_adapters()
        self._weights_paths = dict(weights_paths or {})
        # Told of every load and unload by the caches built on this registry (any thread).
        self.cache_listeners: list[CacheListener] = []

    def ids(self) -> list[str]:
        return list(self.adapters)

    def adapter_class(self, model_id: str) -> type[ModelAdapter]:
        cls = self.adapters.get(model_id)
        if cls is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_MODEL,
                f"no model {model_id!r}; installed: {', '.join(self.adapters) or 'none'}",
                field="model",
            )
        return cls

    def weights_dir(self, model_id: str) -> Path | None:
        if model_id in self._weights_paths:
            return self._weights_paths[model_id]
        if env := os.environ.get(weights_env_var(model_id)):
            return Path(env).expanduser()
        return hub_snapshot_dir(self.adapter_class(model_id).weights)

    def component_dir(self, model_id: str, component: str) -> Path | None:
        """A component's folder: ``--weights ID:NAME=PATH``, ``DREAMCAD_WEIGHTS_<ID>_<NAME>``,
        else the HF cache snapshot of its pinned revision."""
        key = f"{model_id}:{component}"
        if key in self._weights_paths:
            return self._weights_paths[key]
        if env := os.environ.get(weights_env_var(f"{model_id}_{component}")):
            return Path(env).expanduser()
        return hub_snapshot_dir(self.adapter_class(model_id).components.get(component))

    def create(self, model_id: str) -> ModelAdapter:
        """A new, unloaded adapter instance (cheap: nothing is read until ``load``)."""
        cls = self.adapter_class(model_id)
        adapter = cls(weights_dir=self.weights_dir(model_id) if cls.weights else None)
        adapter.registry = self  # composite models check their inner models' cards here
        for name in cls.components:
            if (folder := self.component_dir(model_id, name)) is not None:
                adapter.component_dirs[name] = folder
        return adapter


class ModelCache:
    """Loaded adapters on one device, least recently used unloaded first past the budget.

    Models in use (a running job's model and, inside it, a composite's inner models) are held
    and never unloaded to make room; a composite model takes its inner models from here too
    (``ModelAdapter.inner_model``), so every model on the device counts against one budget
    and none is loaded twice."""

    def __init__(self, registry: ModelRegistry, device: str, budget_mb: int | None) -> None:
        self.registry = registry
        self.device = device
        self.budget_mb = budget_mb
        self._loaded: OrderedDict[str, ModelAdapter] = OrderedDict()
        self._holds: Counter[str] = Counter()

    def acquire(self, model_id: str, dtype: str | None = None) -> ModelAdapter:
        """The loaded adapter (loading it, and unloading others past the budget, if needed).

        ``dtype`` None: the adapter's ``cuda_dtype`` on a CUDA device (what its upstream runs
        in), float32 elsewhere."""
        if model_id in self._loaded:
            self._loaded.move_to_end(model_id)
            return self._loaded[model_id]
        adapter = self.registry.create(model_id)
        if dtype is None:
            dtype = adapter.cuda_dtype if self.device.startswith("cuda") else "float32"
        adapter.models = self
        self._make_room(adapter.vram_mb)
        started = time.perf_counter()
        adapter.load(self.device, dtype)  # WEIGHTS_MISSING, CUDA_OUT_OF_MEMORY: typed there
        self._loaded[model_id] = adapter
        self._tell("load", adapter, time.perf_counter() - started)
        return adapter

    @contextlib.contextmanager
    def using(self, model_id: str) -> Iterator[ModelAdapter]:
        """The loaded adapter, held (not evictable) until the block ends."""
        adapter = self.acquire(model_id)
        self._holds[model_id] += 1
        try:
            yield adapter
        finally:
            self._holds[model_id] -= 1

    def loaded(self) -> list[str]:
        return list(self._loaded)

    def evict(self, model_id: str) -> None:
        adapter = self._loaded.pop(model_id, None)
        if adapter is not None:
            adapter.unload()
            self._tell("unload", adapter, 0.0)

    def clear(self) -> None:
        for model_id in list(self._loaded):
            self.evict(model_id)

    def _tell(self, kind: str, adapter: ModelAdapter, seconds: float) -> None:
        event = CacheEvent(kind, adapter.id, self.device, seconds, adapter.vram_mb)
        for listener in self.registry.cache_listeners:
            try:
                listener(event)
            except Exception:  # an observer's bug must never fail a job
                log.exception("model cache listener failed on %s", event)

    def _make_room(self, needed_mb: int) -> None:
        if self.budget_mb is None:
            return
        while sum(a.vram_mb for a in self._loaded.values()) + needed_mb > self.budget_mb:
            idle = [m for m in self._loaded if self._holds[m] <= 0]
            if not idle:
                return  # everything loaded is in use: load anyway, CUDA OOM is typed
            log.info("unloading %s to make room for %d MB", idle[0], needed_mb)
            self.evict(idle[0])
