"""A second text model with no weights, plugged in the way any third-party model is.

Compare needs two models that take the same input, and the built-in ones each take another
(procedural: text, inflate: image); the models with weights take minutes on 2 CPU cores even
tiny. This is the procedural model's real code under another id, its shapes stretched upwards
so the two are told apart in a row. ``PLUGIN_PATH`` holds its entry point (a ``.dist-info``):
a backend started with it on ``PYTHONPATH`` lists the model, as it would an installed plug-in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from backend.models.builtin.procedural import ProceduralAdapter

PLUGIN_PATH = Path(__file__).resolve().parent / "plugin_path"
MODEL_ID = "procedural-tall"
STRETCH = (0.7, 1.6, 0.7)  # x, y, z of the raw asset, which is +Y up (raw_asset.py)


class TallProceduralAdapter(ProceduralAdapter):
    id = MODEL_ID
    name = "Procedural (tall)"
    description = "The procedural model's shapes, stretched upwards (a test plug-in)."

    def _generate(self, request, progress, cancel):
        raw = super()._generate(request, progress, cancel)
        return dataclasses.replace(raw, vertices=raw.vertices * STRETCH)


def plugin_env() -> dict[str, str]:
    """The environment of a backend that lists this model."""
    import os

    existing = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(PLUGIN_PATH), existing) if p)}
