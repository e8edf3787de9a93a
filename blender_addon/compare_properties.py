"""The Compare section's persistent state: which models the artist ticked (saved with the .blend).

Kept as one comma-joined string of model ids rather than a flag per model, because the models
are the backend's, not the add-on's: a model that is not there now keeps its tick for later.
"""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

SEPARATOR = ","


class DREAMCAD_PG_compare_settings(bpy.types.PropertyGroup):
    models: StringProperty(name="Compare Models", description="Model ids ticked for Compare")


def ticked(settings: DREAMCAD_PG_compare_settings) -> list[str]:
    return [model_id for model_id in settings.models.split(SEPARATOR) if model_id]


def toggle(settings: DREAMCAD_PG_compare_settings, model_id: str) -> bool:
    """Tick or untick ``model_id``; returns whether it is ticked now."""
    models = ticked(settings)
    now_ticked = model_id not in models
    models = [*models, model_id] if now_ticked else [m for m in models if m != model_id]
    settings.models = SEPARATOR.join(models)
    return now_ticked
