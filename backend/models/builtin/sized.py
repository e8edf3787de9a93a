"""Stand-ins with a size: the procedural model under other ids, declaring VRAM and a load time.

Multi-device placement (jobs/placement.py, jobs/device_placer.py) is about where models of
different sizes are loaded; the built-in models need no memory and load at once. ``sized_model``
makes a procedural model that declares ``vram_mb`` and takes ``load_s`` to load (the time a
real model spends reading its weights), so tests and benchmarks/multi_device.py can run a mixed
stream on CPU workers with small budgets. Not registered as a plug-in: callers pass these to a
``ModelRegistry`` themselves.
"""

from __future__ import annotations

import time

from backend.models.base import ModelAdapter
from backend.models.builtin.procedural import ProceduralAdapter


def sized_model(model_id: str, vram_mb: int, load_s: float = 0.0) -> type[ModelAdapter]:
    """A procedural model named ``model_id`` declaring ``vram_mb`` and loading in ``load_s``."""

    def _load(self: ProceduralAdapter, device: str, dtype: str) -> None:
        time.sleep(load_s)  # stands for reading weights onto the device

    return type(
        f"Sized_{model_id.replace('-', '_')}",
        (ProceduralAdapter,),
        {
            "id": model_id,
            "name": f"Procedural stand-in ({vram_mb} MB)",
            "vram_mb": vram_mb,
            "_load": _load,
        },
    )
