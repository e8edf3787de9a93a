"""The Ray dispatcher's events into the backend's Prometheus metrics.

Locally the metrics hear model loads from the front door's own model caches; on a farm the
caches live in the actors, so ``ClusterObserver`` (the dispatcher's ``on_event``) turns what the
dispatcher reports into the same instruments: each actor's model loads and unloads (device
label ``node:device``, so two nodes' ``cpu`` or ``cuda:0`` stay apart), the models loaded now
per actor (what a front door that restarted finds already loaded included, and nothing for an
actor that is gone), and ``dreamcad_placement_total{hit}``: jobs placed on an actor that held
their model already, or not. Actors up and busy come from the dispatcher's ``health`` (the
metrics' ``workers``), as local workers do.

The server makes its metrics after the dispatcher, so ``metrics`` is set once both exist
(before the dispatcher starts); until then, and without ``--metrics-address``, events are
dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from backend.models.registry import CacheEvent

if TYPE_CHECKING:
    from backend.metrics import BackendMetrics

log = logging.getLogger(__name__)


class ClusterObserver:
    """``on_event`` for the dispatcher: feeds ``metrics`` (None: nothing is recorded)."""

    def __init__(self, metrics: BackendMetrics | None = None) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        # actor label -> model -> declared MB, as the metrics count them loaded now
        self._loaded: dict[str, dict[str, int]] = {}

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        try:
            with self._lock:
                self._record(metrics, name, fields)
        except Exception:  # an observer's bug must never stop the dispatcher
            log.exception("cluster metrics not updated for %s %s", name, fields)

    def _record(self, metrics: BackendMetrics, name: str, fields: dict[str, Any]) -> None:
        if name == "job_placed":
            metrics.placements.labels("true" if fields["model_loaded"] else "false").inc()
        elif name == "model_cache":
            event: CacheEvent = replace(fields["event"], device=fields["where"])
            metrics.on_cache_event(event)
            held = self._loaded.setdefault(event.device, {})
            if event.kind == "load":
                held[event.model_id] = event.vram_mb
            else:
                held.pop(event.model_id, None)
        elif name == "actor_ready":
            # Models an earlier front door's jobs left loaded: held, though not loaded by us.
            where, models = fields["where"], tuple(fields.get("loaded", ()))
            self._forget(metrics, where)
            for model in models:
                metrics.loaded.labels(model, where).set(1)
            self._loaded[where] = dict.fromkeys(models, 0)
            metrics.loaded_vram.labels(where).set(fields.get("loaded_mb", 0) * 2.0**20)
        elif name == "actor_lost":
            self._forget(metrics, fields["where"])

    def _forget(self, metrics: BackendMetrics, where: str) -> None:
        """The actor at ``where`` holds nothing now (it is gone, or starts afresh)."""
        for model in self._loaded.pop(where, {}):
            metrics.loaded.labels(model, where).set(0)
        if where:
            metrics.loaded_vram.labels(where).set(0)
