"""User presets: the panel's generation settings saved by name as JSON, and loaded back.

Prompt and images are left out on purpose: a preset is "how" to generate, not "what". Files
live in the add-on's user folder (``presets/<name>.json``), so they survive add-on updates.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import bpy
from bpy.props import EnumProperty

from shared_protocol.errors import ErrorCode, ProtocolError

from .. import live_state
from ..preferences import user_path
from ..properties import parameter_value, set_parameter_value, sync_parameters
from .reporting import report_error

PRESET_FIELDS = ("model_id", "task", "seed", "randomize_seed", "quality", "target_faces",
                 "texture_size", "pbr", "placement", "use_target_size", "target_size")
_preset_items_cache: list[tuple[str, str, str]] = []


def presets_folder() -> Path:
    return user_path("presets")


def preset_path(name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9 _-]", "", name).strip()
    if not slug:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{name!r} is not a usable preset name",
                            field="preset_name", hint="Use letters, digits, spaces, - or _.")
    return presets_folder() / f"{slug}.json"


def settings_to_preset(settings) -> dict[str, Any]:
    data = {name: getattr(settings, name) for name in PRESET_FIELDS}
    data["parameters"] = {p.name: parameter_value(p) for p in settings.parameters}
    return data


def apply_preset(settings, data: dict[str, Any]) -> None:
    """Set the settings from a preset; unknown keys and values out of range are skipped."""
    for name in PRESET_FIELDS:
        if name in data:
            try:
                setattr(settings, name, data[name])
            except (TypeError, ValueError):
                continue  # e.g. a preset from a newer add-on with another enum value
    model = live_state.model_info(settings.model_id)
    if model is not None and settings.task not in model.tasks:
        settings.task = model.tasks[0]  # e.g. multi-view input saved with another model
    sync_parameters(settings, model)
    for item in settings.parameters:
        if item.name in data.get("parameters", {}):
            try:
                set_parameter_value(item, data["parameters"][item.name])
            except (TypeError, ValueError):
                continue


def _preset_items(_self: Any, _context: Any) -> list[tuple[str, str, str]]:
    _preset_items_cache[:] = [(p.stem, p.stem, str(p)) for p in
                              sorted(presets_folder().glob("*.json"))]
    return _preset_items_cache or [("", "(no presets)", "")]


class DREAMCAD_OT_preset_save(bpy.types.Operator):
    """Save the current generation settings as a preset named in the panel"""

    bl_idname = "dreamcad.preset_save"
    bl_label = "Save Preset"

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.dreamcad
        try:
            path = preset_path(settings.preset_name)
        except ProtocolError as error:
            return report_error(self, error)
        path.write_text(json.dumps(settings_to_preset(settings), indent=2, sort_keys=True))
        self.report({"INFO"}, f"Dream CAD: saved preset {path.stem}")
        return {"FINISHED"}


class DREAMCAD_OT_preset_load(bpy.types.Operator):
    """Load a saved preset into the panel"""

    bl_idname = "dreamcad.preset_load"
    bl_label = "Load Preset"
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "preset"

    preset: EnumProperty(name="Preset", items=_preset_items)

    def invoke(self, context: bpy.types.Context, _event: bpy.types.Event) -> set[str]:
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            path = preset_path(self.preset)
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            return report_error(self, ProtocolError(
                ErrorCode.INVALID_FIELD, f"cannot read preset {self.preset!r}: {error}",
                field="preset"))
        except ProtocolError as error:
            return report_error(self, error)
        apply_preset(context.scene.dreamcad, data)
        context.scene.dreamcad.preset_name = path.stem
        return {"FINISHED"}


class DREAMCAD_OT_preset_delete(bpy.types.Operator):
    """Delete the preset named in the panel"""

    bl_idname = "dreamcad.preset_delete"
    bl_label = "Delete Preset"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            path = preset_path(context.scene.dreamcad.preset_name)
        except ProtocolError as error:
            return report_error(self, error)
        path.unlink(missing_ok=True)
        return {"FINISHED"}


CLASSES = (DREAMCAD_OT_preset_save, DREAMCAD_OT_preset_load, DREAMCAD_OT_preset_delete)
