"""Load and release requests for one worker's models, served on the worker's own thread.

A worker's ModelCache belongs to its thread (models are not thread-safe), so a ``load_request``
or ``unload_request`` is queued here by the server thread and served by the worker between jobs
(within ``CLAIM_WAIT_S``). This module also remembers, per model, what the shelf shows for this
device: ``loading`` while a load runs, ``loaded`` with the VRAM the load took (CUDA only), or
``error`` with the coded error of the last failed load.
"""

from __future__ import annotations

import logging
import queue
from typing import Literal

from backend.jobs.runner import error_from_exception
from backend.models.registry import ModelCache
from backend.torch_loaded import loaded_torch
from shared_protocol.errors import ErrorInfo
from shared_protocol.messages import ModelState

log = logging.getLogger(__name__)

Action = Literal["load", "unload"]


class ModelControl:
    def __init__(self, device: str) -> None:
        self.device = device
        self._requests: queue.SimpleQueue[tuple[Action, str]] = queue.SimpleQueue()
        self.loading: str | None = None
        self.errors: dict[str, ErrorInfo] = {}
        self.vram_mb: dict[str, float] = {}
        self._loaded: tuple[str, ...] = ()  # a snapshot other threads may read

    def request(self, action: Action, model_id: str) -> None:
        """Any thread: queue a load or a release for the worker."""
        if action == "load":
            self.loading = model_id  # shown as loading from now on, not from the worker's turn
        self._requests.put((action, model_id))

    def serve(self, cache: ModelCache) -> None:
        """The worker's thread: do every queued request, then refresh the snapshot."""
        while True:
            try:
                action, model_id = self._requests.get_nowait()
            except queue.Empty:
                break
            if action == "load":
                self._load(cache, model_id)
            else:
                cache.evict(model_id)
                self.errors.pop(model_id, None)
                log.info("%s released on %s", model_id, self.device)
        self.refresh(cache)

    def refresh(self, cache: ModelCache) -> None:
        self._loaded = tuple(cache.loaded())

    def state_of(self, model_id: str) -> ModelState | None:
        """This device's state of the model, or None when it is neither loaded nor loading."""
        if self.loading == model_id:
            return ModelState(model_id, "loading", self.device)
        if model_id in self._loaded:
            return ModelState(model_id, "loaded", self.device, self.vram_mb.get(model_id))
        if model_id in self.errors:
            return ModelState(model_id, "error", self.device, error=self.errors[model_id])
        return None

    def _load(self, cache: ModelCache, model_id: str) -> None:
        self.loading = model_id
        before = _allocated_mb(self.device)
        try:
            cache.acquire(model_id)
        except Exception as error:
            info, _ = error_from_exception(error)
            self.errors[model_id] = info
            log.warning("loading %s on %s failed: %s", model_id, self.device, info.describe())
        else:
            self.errors.pop(model_id, None)
            after = _allocated_mb(self.device)
            if after is not None:
                self.vram_mb[model_id] = round(after - (before or 0.0), 1)
            log.info("%s loaded on %s", model_id, self.device)
        finally:
            self.loading = None


def _allocated_mb(device: str) -> float | None:
    """What torch holds on a CUDA device now (None: not CUDA, or CUDA never started)."""
    torch = loaded_torch() if device.startswith("cuda") else None
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda.memory_allocated(device) / 2**20
