"""The panel's persistent state: one PropertyGroup on the scene, and the request built from it.

``DREAMCAD_PG_settings`` (``scene.dreamcad``) holds everything the user sets; model parameters
live in a collection rebuilt from the selected model's ParameterSchema, so any model's options
are drawn without model-specific code. ``build_submit_request`` turns that state into a typed
SubmitRequest and checks it first, raising ProtocolError with the field and a fix the panel can
show. ``DREAMCAD_PG_live`` (``window_manager.dreamcad_live``) is only a display copy of the job
queue that the runtime refreshes each tick, because a UIList can only draw an RNA collection;
the jobs themselves live in live_state.py.
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import (
    DEFAULT_FACES,
    DEFAULT_TEXTURE_SIZE,
    MAX_FACES,
    MIN_FACES,
    TEXTURE_SIZES,
    ImageInput,
    ModelInfo,
    ParameterSchema,
    SubmitRequest,
)
from shared_protocol.parameters import check_parameter

from .client.best_fit import RULE
from .compare_properties import DREAMCAD_PG_compare_settings
from .mesh_properties import DREAMCAD_PG_mesh_settings

# (target faces, texture size) of each built-in quality preset.
QUALITY_PRESETS: dict[str, tuple[int, int]] = {
    "DRAFT": (5_000, 512),
    "STANDARD": (DEFAULT_FACES, DEFAULT_TEXTURE_SIZE),
    "HIGH": (100_000, 2048),
}
MAX_SEED = 2**31 - 1  # IntProperty is a signed 32-bit int; the protocol allows up to 2**32 - 1

_TASK_ITEMS = (
    ("text", "Text", "Generate from a text prompt"),
    ("image", "Image", "Generate from one image"),
    ("multi_image", "Views", "Generate from several views of one object"),
)
# The model shelf stars the best fit for one of these; the tooltip says by which rule.
SHELF_TASK_ITEMS = tuple(
    (task, name, f"Star the best model for {what}. {RULE}")
    for task, name, what in (
        ("text", "Text", "a text prompt"),
        ("image", "Image", "one image"),
        ("multi_image", "Views", "several views of one object"),
        ("texture", "Texture", "texturing a mesh you have"),
    )
)
_PLACEMENT_ITEMS = (
    ("CURSOR", "3D Cursor", "Place the result at the 3D cursor"),
    ("ALIGN", "Align to Selected", "Place, turn and size the result like the active object"),
    ("REPLACE", "Replace Selected", "Put the result where the active object is and remove it"),
)
# Blender keeps only the strings of dynamic enum items that Python keeps alive.
_choice_items_cache: dict[str, list[tuple[str, str, str]]] = {}
_CHOICE_SEPARATOR = "\x1f"  # choices are stored on the item, joined: it needs no live backend


def _choice_items(item: DREAMCAD_PG_parameter, _context: Any) -> list[tuple[str, str, str]]:
    key = item.choices
    if key not in _choice_items_cache:
        choices = [c for c in key.split(_CHOICE_SEPARATOR) if c]
        _choice_items_cache[key] = [(c, c, "") for c in choices] or [("", "(none)", "")]
    return _choice_items_cache[key]


class DREAMCAD_PG_parameter(bpy.types.PropertyGroup):
    """One model parameter's value; ``kind`` says which of the value fields is used."""

    model_id: StringProperty()
    kind: StringProperty()
    choices: StringProperty()  # for kind "choice": the schema's choices, joined
    label: StringProperty()
    description: StringProperty()
    int_value: IntProperty(name="Value")
    float_value: FloatProperty(name="Value")
    bool_value: BoolProperty(name="Value")
    str_value: StringProperty(name="Value")
    choice_value: EnumProperty(name="Value", items=_choice_items)


def quality_of(target_faces: int, texture_size: int) -> str:
    """The built-in preset with these settings, or CUSTOM."""
    return next((name for name, values in QUALITY_PRESETS.items()
                 if values == (target_faces, texture_size)), "CUSTOM")


def _apply_quality(settings: DREAMCAD_PG_settings, _context: Any) -> None:
    if settings.quality not in QUALITY_PRESETS:
        return  # CUSTOM keeps what was set by hand
    faces, texture = QUALITY_PRESETS[settings.quality]
    # Setting faces first passes through a mixed state: the quality is matched again after.
    settings.target_faces = faces
    settings.texture_size = str(texture)


def _match_quality(settings: DREAMCAD_PG_settings, _context: Any) -> None:
    """Keep the quality menu truthful when faces or texture size are set by hand."""
    quality = quality_of(settings.target_faces, int(settings.texture_size))
    if settings.quality != quality:
        settings.quality = quality


class DREAMCAD_PG_settings(bpy.types.PropertyGroup):
    """Everything the Dream CAD panel lets the user set (saved with the .blend)."""

    model_id: StringProperty(name="Model", description="Id of the selected backend model")
    task: EnumProperty(name="Input", items=_TASK_ITEMS, default="text")
    prompt: StringProperty(name="Prompt", description="What to generate")
    image_source: EnumProperty(
        name="Image From",
        items=(
            ("FILE", "File", "An image file on disk"),
            ("BLEND", "Blend", "An image in this file"),
        ),
        default="FILE",
    )
    image_path: StringProperty(name="Image", subtype="FILE_PATH")
    image: PointerProperty(name="Image", type=bpy.types.Image)
    view_left_path: StringProperty(name="Left", subtype="FILE_PATH")
    view_back_path: StringProperty(name="Back", subtype="FILE_PATH")
    view_right_path: StringProperty(name="Right", subtype="FILE_PATH")
    seed: IntProperty(name="Seed", min=0, max=MAX_SEED, default=0)
    randomize_seed: BoolProperty(name="Random Seed", default=True)
    quality: EnumProperty(
        name="Quality",
        items=(
            ("DRAFT", "Draft", "5k faces, 512 px textures"),
            ("STANDARD", "Standard", "20k faces, 1024 px textures"),
            ("HIGH", "High", "100k faces, 2048 px textures"),
            ("CUSTOM", "Custom", "Faces and texture size as set below"),
        ),
        default="STANDARD",
        update=_apply_quality,
    )
    target_faces: IntProperty(name="Faces", min=MIN_FACES, max=MAX_FACES, default=DEFAULT_FACES,
                              update=_match_quality)
    texture_size: EnumProperty(
        name="Texture",
        items=[(str(s), f"{s} px", "") for s in TEXTURE_SIZES],
        default=str(DEFAULT_TEXTURE_SIZE),
        update=_match_quality,
    )
    pbr: BoolProperty(name="PBR Materials", default=True, description="Bake metal/roughness too")
    parameters: CollectionProperty(type=DREAMCAD_PG_parameter)
    placement: EnumProperty(name="Place", items=_PLACEMENT_ITEMS, default="CURSOR")
    use_target_size: BoolProperty(name="Target Size", default=False)
    target_size: FloatProperty(name="Size", default=1.0, min=0.001, subtype="DISTANCE")
    preset_name: StringProperty(name="Preset", default="My Preset")
    mesh: PointerProperty(type=DREAMCAD_PG_mesh_settings)  # the "Your mesh" section
    compare: PointerProperty(type=DREAMCAD_PG_compare_settings)  # the "Compare" section
    shelf_task: EnumProperty(name="Best For", items=SHELF_TASK_ITEMS, default="image")


class DREAMCAD_PG_job_row(bpy.types.PropertyGroup):
    """A display copy of one job for the queue's UIList (refreshed by the runtime)."""

    job_id: StringProperty()
    label: StringProperty()
    state: StringProperty()
    detail: StringProperty()
    percent: FloatProperty(subtype="PERCENTAGE", min=0.0, max=100.0)
    imported: BoolProperty()
    preview_icon: IntProperty()


class DREAMCAD_PG_live(bpy.types.PropertyGroup):
    jobs: CollectionProperty(type=DREAMCAD_PG_job_row)
    active_job_index: IntProperty()


def parameter_schema(model: ModelInfo | None, name: str) -> ParameterSchema | None:
    if model is None:
        return None
    return next((p for p in model.parameters if p.name == name), None)


def sync_parameters(settings: DREAMCAD_PG_settings, model: ModelInfo | None) -> None:
    """Rebuild the parameter collection for ``model``, keeping values the user already set."""
    kept = {
        p.name: parameter_value(p)
        for p in settings.parameters
        if p.model_id == (model.id if model else "")
    }
    settings.parameters.clear()
    if model is None:
        return
    for schema in model.parameters:
        item = settings.parameters.add()
        item.name = schema.name
        item.model_id = model.id
        item.kind = schema.kind
        item.choices = _CHOICE_SEPARATOR.join(schema.choices)
        item.label = schema.label or schema.name.replace("_", " ").title()
        item.description = schema.description
        value = kept.get(schema.name, schema.default)
        try:
            set_parameter_value(item, value)
        except (TypeError, ValueError):
            set_parameter_value(item, schema.default)


def parameter_value(item: DREAMCAD_PG_parameter) -> Any:
    return {
        "int": lambda: item.int_value,
        "float": lambda: item.float_value,
        "bool": lambda: item.bool_value,
        "choice": lambda: item.choice_value,
    }.get(item.kind, lambda: item.str_value)()


def set_parameter_value(item: DREAMCAD_PG_parameter, value: Any) -> None:
    if item.kind == "int":
        item.int_value = int(value)
    elif item.kind == "float":
        item.float_value = float(value)
    elif item.kind == "bool":
        item.bool_value = bool(value)
    elif item.kind == "choice":
        item.choice_value = str(value)
    else:
        item.str_value = "" if value is None else str(value)


def build_submit_request(
    settings: DREAMCAD_PG_settings,
    model: ModelInfo | None,
    images: tuple[ImageInput, ...] = (),
    *,
    max_prompt_chars: int | None = None,
) -> SubmitRequest:
    """The typed request for the panel's state; ProtocolError names the field at fault."""
    if model is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_MODEL,
            f"no model {settings.model_id!r} on this backend" if settings.model_id
            else "no model selected",
            field="model",
            hint="Pick a model in the Dream CAD panel (connect to the backend first).",
        )
    if not model.available:
        code = (ErrorCode.WEIGHTS_MISSING if not model.weights_present
                else ErrorCode.MODEL_UNAVAILABLE)
        raise ProtocolError(code, f"{model.name} cannot run: {model.unavailable_reason}",
                            field="model")
    if settings.task not in model.tasks:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_TASK,
            f"{model.name} does not take {settings.task} input",
            field="task",
            hint=f"{model.name} takes: {', '.join(model.tasks)}.",
        )
    prompt = settings.prompt.strip()
    if settings.task == "text" and not prompt:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "the prompt is empty", field="prompt",
                            hint="Type what to generate, e.g. 'a wooden chair'.")
    if max_prompt_chars is not None and len(prompt) > max_prompt_chars:
        raise ProtocolError(
            ErrorCode.PROMPT_TOO_LONG,
            f"the prompt has {len(prompt)} characters; the backend takes {max_prompt_chars}",
            field="prompt",
        )
    if settings.task != "text" and not images:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "no image chosen", field="image",
                            hint="Choose an image file, or an image already in this .blend.")
    return SubmitRequest(
        model=model.id,
        task=settings.task,
        prompt=prompt,
        images=images if settings.task != "text" else (),
        seed=None if settings.randomize_seed else settings.seed,
        target_faces=settings.target_faces,
        texture_size=int(settings.texture_size),
        pbr=settings.pbr,
        parameters=checked_parameters(settings, model),
        name=prompt[:60],
    )


def checked_parameters(settings: DREAMCAD_PG_settings, model: ModelInfo) -> dict[str, Any]:
    """The model's parameters from the panel, checked by the same code the backend runs."""
    values: dict[str, Any] = {}
    for item in settings.parameters:
        schema = parameter_schema(model, item.name)
        if schema is None:
            continue  # left over from another model; sync_parameters removes it on next select
        values[item.name] = check_parameter(
            schema, parameter_value(item), label=f"{model.name}'s {item.label or item.name}"
        )
    return values


CLASSES = (DREAMCAD_PG_mesh_settings, DREAMCAD_PG_compare_settings, DREAMCAD_PG_parameter,
           DREAMCAD_PG_settings, DREAMCAD_PG_job_row, DREAMCAD_PG_live)


def attach() -> None:
    bpy.types.Scene.dreamcad = PointerProperty(type=DREAMCAD_PG_settings)
    bpy.types.WindowManager.dreamcad_live = PointerProperty(type=DREAMCAD_PG_live)


def detach() -> None:
    del bpy.types.WindowManager.dreamcad_live
    del bpy.types.Scene.dreamcad
    _choice_items_cache.clear()
