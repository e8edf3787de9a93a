"""GLB file -> one placed, named, tagged object in the "Dream CAD" collection (or a LOD set).

Blender's own glTF importer reads the file (Principled BSDF materials, UVs; lod_levels.py bakes
node transforms, splits a ``_LOD0``.. chain into levels and joins quad pairs); this module then
makes the result easy to use: meshes joined into one object with the origin at the bottom
centre of its bounds, optionally scaled to a target size, placed at the 3D cursor or where the
active object is (aligned to it, or replacing it), named from the prompt, and tagged with the
generation settings as custom properties so the .blend remembers how to make it again. A LOD
chain becomes ``<name>_LOD0``.. in a collection of their own, LOD0 visible and tagged. Vertex
data moves through numpy and ``foreach_get``, never per-vertex Python loops. Callers that run
outside an operator push their own undo step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix, Vector

from shared_protocol.errors import ErrorCode, ProtocolError

from . import lod_levels

COLLECTION_NAME = "Dream CAD"
PROPERTY_PREFIX = "dreamcad_"
MAX_NAME_CHARS = 48
ORIGIN_SHIFT_PROPERTY = f"{PROPERTY_PREFIX}origin_shift"  # (3,) taken off the file's vertices


@dataclass(frozen=True)
class Placement:
    """Where an import goes; ``target`` is an object *name* (never a bpy object across ticks)."""

    mode: str = "CURSOR"  # CURSOR, ALIGN or REPLACE
    location: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the 3D cursor when submitted
    target: str = ""
    target_size: float | None = None


@dataclass(frozen=True)
class Provenance:
    """How the asset was made: stored on the object as ``dreamcad_*`` custom properties."""

    prompt: str
    model: str
    seed: int | None
    job_id: str
    backend_version: str
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)  # image paths/names, for regenerate


def object_name(prompt: str, fallback: str = "Dream CAD Asset") -> str:
    """A readable object name from a prompt: first words, no control characters."""
    words = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f]", " ", prompt)).strip()
    if not words:
        return fallback
    if len(words) > MAX_NAME_CHARS:
        words = words[:MAX_NAME_CHARS].rsplit(" ", 1)[0] or words[:MAX_NAME_CHARS]
    return words[0].upper() + words[1:]


def import_glb(
    path: Path, name: str, placement: Placement, provenance: Provenance
) -> bpy.types.Object:
    """Import ``path`` and return the one placed object (see the module docstring)."""
    if not Path(path).is_file():
        raise ProtocolError(ErrorCode.RESULT_EXPIRED, f"result file {path} is missing",
                            hint="Re-import the job from the queue to fetch it again.")
    obj, *coarser = lod_levels.import_levels(path)
    collection = dreamcad_collection()
    _move_to_collection(obj, collection)
    bottom_centre, extent = _bottom_centre(obj.data)
    for level in (obj, *coarser):  # every level keeps LOD0's origin: they overlap exactly
        level.data.transform(Matrix.Translation(-bottom_centre))
        level.data.update()
    # What comes with the asset in its frame (the Gaussians of splat_import.py) moves with it.
    obj[ORIGIN_SHIFT_PROPERTY] = tuple(bottom_centre)
    _place(obj, placement, extent)
    obj.name = f"{name}_LOD0" if coarser else name
    obj.data.name = obj.name
    tag(obj, provenance)
    lod_levels.arrange_levels(obj, coarser, collection)
    select_only(obj)
    bpy.context.view_layer.update()  # matrix_world reflects the placement for the caller
    return obj


def dreamcad_collection() -> bpy.types.Collection:
    return scene_collection(COLLECTION_NAME)


def scene_collection(name: str) -> bpy.types.Collection:
    """The collection called ``name``, made if missing and linked under the scene if not."""
    scene = bpy.context.scene
    collection = bpy.data.collections.get(name)
    if collection is None:
        collection = bpy.data.collections.new(name)
    if collection not in scene.collection.children_recursive[:]:
        scene.collection.children.link(collection)
    return collection


def provenance_of(obj: bpy.types.Object) -> Provenance | None:
    """The provenance stored on ``obj``, or None if it did not come from Dream CAD."""
    if f"{PROPERTY_PREFIX}job_id" not in obj:
        return None

    def read(key: str, default: Any = "") -> Any:
        return obj.get(PROPERTY_PREFIX + key, default)

    seed = int(read("seed", -1))
    return Provenance(
        prompt=read("prompt"),
        model=read("model"),
        seed=None if seed < 0 else seed,
        job_id=read("job_id"),
        backend_version=read("backend_version"),
        settings=json.loads(read("settings", "{}")),
        inputs=json.loads(read("inputs", "{}")),
    )


def imported_job_ids() -> set[str]:
    """Ids of all jobs whose result is in this .blend (so they are not offered again)."""
    key = f"{PROPERTY_PREFIX}job_id"
    return {obj[key] for obj in bpy.data.objects if key in obj}


def _move_to_collection(obj: bpy.types.Object, collection: bpy.types.Collection) -> None:
    for old in list(obj.users_collection):
        old.objects.unlink(obj)
    collection.objects.link(obj)


def _bottom_centre(mesh: bpy.types.Mesh) -> tuple[Vector, float]:
    """The bottom centre of ``mesh``'s bounds and their largest extent."""
    coords = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", coords)
    points = coords.reshape(-1, 3)  # (n, 3) float32
    low, high = points.min(axis=0), points.max(axis=0)
    bottom_centre = Vector(((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]))
    return bottom_centre, float((high - low).max())


def _place(obj: bpy.types.Object, placement: Placement, extent: float) -> None:
    target = bpy.data.objects.get(placement.target) if placement.target else None
    size = placement.target_size
    if placement.mode in ("ALIGN", "REPLACE") and target is not None:
        world = target.matrix_world
        corners = np.array([tuple(c) for c in target.bound_box])  # (8, 3) local bounds
        low, high = corners.min(axis=0), corners.max(axis=0)
        bottom = world @ Vector(((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]))
        obj.location = bottom
        obj.rotation_euler = world.to_euler()
        if size is None:
            size = max(target.dimensions) or None
        if placement.mode == "REPLACE":
            lod_levels.remove_levels(target)
            bpy.data.objects.remove(target)
            bpy.context.view_layer.update()  # drop the removed object from the layer's list
    else:
        obj.location = placement.location
    if size is not None and extent > 0:
        factor = size / extent
        obj.scale = (factor, factor, factor)


def tag(obj: bpy.types.Object, provenance: Provenance) -> None:
    tags = {
        "prompt": provenance.prompt,
        "model": provenance.model,
        "seed": _seed_property(provenance.seed),
        "job_id": provenance.job_id,
        "backend_version": provenance.backend_version,
        "settings": json.dumps(provenance.settings, sort_keys=True),
        "inputs": json.dumps(provenance.inputs, sort_keys=True),
    }
    for key, value in tags.items():
        obj[PROPERTY_PREFIX + key] = value


def _seed_property(seed: int | None) -> int | str:
    """Seeds go up to 2**32 - 1 but integer custom properties are 32-bit signed: wider ones
    are kept as text (``provenance_of`` reads both)."""
    if seed is None:
        return -1
    return int(seed) if seed < 2**31 else str(seed)


def select_only(obj: bpy.types.Object) -> None:
    view_layer = bpy.context.view_layer
    # Only what is selected: walking every object of the view layer met a freed one once in
    # bpy-as-a-module after ed.undo (a segfault in a later test).
    for other in list(view_layer.objects.selected):
        if other is not None:
            other.select_set(False)
    if obj.name in view_layer.objects:
        obj.select_set(True)
        view_layer.objects.active = obj
