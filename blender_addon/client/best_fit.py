"""Which one model the shelf marks as the best fit for a task (no bpy).

The backend's ``recommended`` list is worked out at hello time, from weights already on its
disk; the shelf needs one pick for the task the artist chose, from what is true now: the
states of the last ping (a finished download makes a model ready) and the GPUs' free memory
of the last ping. ``RULE`` is the rule in words, for the panel's tooltip; ``best_fit`` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared_protocol.messages import GpuInfo, ModelInfo

RULE = (
    "The star marks one model: of those that take this input and fit the free GPU memory now "
    "(or are loaded already), a ready one before one that must be downloaded, then the one "
    "with the largest GPU memory need (the bigger model of a family is the better one); on a "
    "backend without a GPU, the smallest (on a CPU the small model is the one that finishes)"
)
READY = ("present", "loading", "loaded")  # weights on the backend's disk


@dataclass(frozen=True)
class BestFit:
    model: str
    needs_download: bool  # its weights are not on the backend yet (or are on their way)


def best_fit(
    models: Sequence[ModelInfo],
    task: str,
    gpus: Sequence[GpuInfo],
    states: Mapping[str, str],
) -> BestFit | None:
    """The best fit for ``task`` by ``RULE``; None when no model qualifies.

    ``states`` maps a model id to its shelf state name (``missing``, ``downloading``,
    ``present``, ``loading``, ``loaded``, ``error``); a model absent from it counts as its
    ``weights_present`` says. A model in ``error`` is left out: its last download or load
    failed, so it is no pick to offer. Ties keep the backend's order of ``models``.
    """
    free_mb = max((g.memory_free_mb for g in gpus), default=None)
    ranked: list[tuple[bool, int, int, str]] = []
    for order, model in enumerate(models):
        state = states.get(model.id) or ("present" if model.weights_present else "missing")
        if task not in model.tasks or state == "error":
            continue
        ready = state in READY
        if not ready and not model.weights_repo:
            continue  # nothing to download it from
        # A loaded model's memory is already taken from the free figure: it fits by being there.
        if free_mb is not None and model.vram_mb > free_mb and state not in ("loading", "loaded"):
            continue
        size = -model.vram_mb if free_mb is not None else model.vram_mb
        ranked.append((not ready, size, order, model.id))
    if not ranked:
        return None
    needs_download, _size, _order, model_id = min(ranked)
    return BestFit(model_id, needs_download)
