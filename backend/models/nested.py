"""Composite adapters: run another installed adapter inside one of our stages, and keep it.

The text paths (``image-bridge``, ``mvdream``) hand their picture or views to an image model
chosen per request by id. :class:`NestedAdapters` creates that model through the model registry
(the job's own registry when the registry made us, else the installed one), loads it on our
device and dtype, and keeps one loaded until another id is asked for, so a run of jobs with
the same choice loads it once.
"""

from __future__ import annotations

from typing import Any

from backend.models.base import ModelAdapter


class NestedAdapters:
    """At most one loaded nested adapter, created from ``registry`` on first use."""

    def __init__(self, registry: Any = None) -> None:
        self._registry = registry
        self._loaded: tuple[str, ModelAdapter] | None = None
        self.device = "cpu"
        self.dtype = "float32"

    @property
    def registry(self) -> Any:
        """The ``ModelRegistry`` nested models come from (the installed one by default)."""
        if self._registry is None:
            from backend.models.registry import ModelRegistry

            self._registry = ModelRegistry()
        return self._registry

    def place(self, device: str, dtype: str) -> None:
        """Where nested models load; called from the outer adapter's ``load``."""
        self.device, self.dtype = device, dtype

    def get(self, model_id: str) -> ModelAdapter:
        """The loaded adapter ``model_id``; a different one kept so far is unloaded first."""
        if self._loaded is None or self._loaded[0] != model_id:
            self.release()
            adapter = self.registry.create(model_id)
            adapter.load(self.device, self.dtype)
            self._loaded = (model_id, adapter)
        return self._loaded[1]

    def release(self) -> None:
        """Unload the kept adapter, if any."""
        if self._loaded is not None:
            self._loaded[1].unload()
        self._loaded = None
