"""The model shelf: each model's state per device, load and release, and what fits the GPU now.

The state of a model is worked out from the parts that own it, never stored twice: a live
download (downloads/manager.py) makes it ``downloading``; a worker's model control
(jobs/model_control.py) says ``loading``, ``loaded`` or ``error`` on its device; otherwise the
registry says whether its weights are ``present`` or ``missing`` (or ``error`` when the last
download of missing weights failed). Load and release requests are checked here and queued to
the workers. ``recommended`` lists the models that fit the free VRAM now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from backend.downloads.manager import DownloadManager
from backend.jobs.worker import Worker
from backend.models.registry import ModelRegistry
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import GpuInfo, ModelInfo, ModelState


class ModelShelf:
    def __init__(
        self,
        registry: ModelRegistry,
        downloads: DownloadManager | None,
        workers: Callable[[], Sequence[Worker]],
    ) -> None:
        self.registry = registry
        self.downloads = downloads
        self.workers = workers

    def states(self, models: Sequence[str] | None = None) -> tuple[ModelState, ...]:
        states: list[ModelState] = []
        for model_id in models or self.registry.ids():
            states += self._states_of(model_id)
        return tuple(states)

    def _states_of(self, model_id: str) -> list[ModelState]:
        live = self.downloads.live_for(model_id) if self.downloads else None
        if live is not None:
            fraction = live.progress.fraction
            return [ModelState(model_id, "downloading", download_id=live.download_id,
                               fraction=fraction)]  # fmt: skip
        on_devices = [s for w in self.workers() if (s := w.control.state_of(model_id))]
        if on_devices:
            return on_devices
        if not self.registry.create(model_id).missing_weights():
            return [ModelState(model_id, "present")]
        last = self.downloads.last_of(model_id) if self.downloads else None
        if last is not None and last.state == "failed":
            return [ModelState(model_id, "error", error=last.error,
                               download_id=last.download_id)]  # fmt: skip
        return [ModelState(model_id, "missing")]

    def load(self, model_id: str, device: str = "") -> tuple[ModelState, ...]:
        adapter = self.registry.create(model_id)  # UNKNOWN_MODEL
        if missing := adapter.missing_weights():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{' and '.join(missing)} of {model_id} missing: download them first",
                field="body.model",
                hint=f"Send a download_request (or run `dreamcad-backend download {model_id}`).",
            )
        self._worker(device).control.request("load", model_id)
        return self.states([model_id])

    def unload(self, model_id: str, device: str = "") -> tuple[ModelState, ...]:
        self.registry.adapter_class(model_id)  # UNKNOWN_MODEL
        workers = [self._worker(device)] if device else list(self.workers())
        for worker in workers:
            worker.control.request("unload", model_id)
        return self.states([model_id])

    def _worker(self, device: str) -> Worker:
        workers = list(self.workers())
        for worker in workers:
            if worker.device == device or (not device and worker is workers[0]):
                return worker
        known = ", ".join(w.device for w in workers) or "none"
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"no worker on device {device!r} (devices: {known})",
            field="body.device",
        )  # fmt: skip


def recommended(infos: Sequence[ModelInfo], gpus: Sequence[GpuInfo],
                loaded: Sequence[str] = ()) -> tuple[str, ...]:  # fmt: skip
    """Models that can run now, best first.

    With GPUs: those whose VRAM need fits the most free memory on one GPU (or already loaded),
    largest first (the bigger model of a family is the better one). Without: every runnable
    model, smallest first (on a CPU a small model is the one that finishes)."""
    runnable = [i for i in infos if i.available and i.weights_present]
    if not gpus:
        return tuple(i.id for i in sorted(runnable, key=lambda i: i.vram_mb))
    free = max(g.memory_free_mb for g in gpus)
    fits = [i for i in runnable if i.vram_mb <= free or i.id in loaded]
    return tuple(i.id for i in sorted(fits, key=lambda i: -i.vram_mb))
