"""A compare's results in the scene: a labelled row in the "Dream CAD Compare" collection, and Keep.

Each result is imported like any other (importer.py: joined, origin at the bottom centre,
tagged with its provenance), then moved into the compare collection, tagged with its compare
(``dreamcad_compare_id``, ``dreamcad_compare_index``) and its figures (model, seconds, faces,
peak VRAM as ``dreamcad_compare_*`` custom properties), and given a text label parented above
it. The row is laid out again whenever a result lands, left to right in the compare's order,
each result one gap past the bounds of the one before, from the row's start (the 3D cursor when
the compare was sent). Which compares this .blend holds, and where their rows start, is kept on
the collection itself, so it is saved, undone and redone with the scene; which jobs make up a
compare comes from the backend (client/compare.py). ``keep`` moves one result into the Dream
CAD collection at the row's start and removes the rest of the row and every label.
"""

from __future__ import annotations

import math

import bpy
from mathutils import Matrix, Vector

from . import importer
from .client.compare import CompareEntry, vram_text

COLLECTION_NAME = "Dream CAD Compare"
PREFIX = f"{importer.PROPERTY_PREFIX}compare_"
ID_PROPERTY = f"{PREFIX}id"
INDEX_PROPERTY = f"{PREFIX}index"
LABEL_PROPERTY = f"{PREFIX}label"  # on a label: the compare id it belongs to
ROWS_PROPERTY = f"{PREFIX}rows"  # on the collection: {compare id: row start (x, y, z)}
GAP_FRACTION = 0.35  # of the larger of two neighbours' widths
MIN_GAP = 0.2  # metres, so tiny results are still told apart
LABEL_SIZE_FRACTION = 0.11  # label text height, of the row's tallest result
LABEL_LIFT = 0.12  # of the same: space between a result's top and its label


def compare_collection() -> bpy.types.Collection:
    return importer.scene_collection(COLLECTION_NAME)


def start_row(compare_id: str, origin: tuple[float, float, float]) -> None:
    """Remember in this .blend that ``compare_id``'s results land here, from ``origin``."""
    collection = compare_collection()
    rows = dict(collection.get(ROWS_PROPERTY, {}))
    rows[compare_id] = tuple(origin)
    collection[ROWS_PROPERTY] = rows


def row_origin(compare_id: str) -> tuple[float, float, float] | None:
    """Where ``compare_id``'s row starts, or None when this .blend holds no such compare."""
    collection = bpy.data.collections.get(COLLECTION_NAME)
    rows = collection.get(ROWS_PROPERTY, {}) if collection is not None else {}
    return tuple(rows[compare_id]) if compare_id in rows else None


def _forget_row(compare_id: str) -> None:
    collection = bpy.data.collections.get(COLLECTION_NAME)
    if collection is not None and ROWS_PROPERTY in collection:
        rows = dict(collection[ROWS_PROPERTY])
        rows.pop(compare_id, None)
        collection[ROWS_PROPERTY] = rows


def row_objects(compare_id: str) -> list[bpy.types.Object]:
    """The results of ``compare_id`` in the scene, in row order."""
    found = [o for o in bpy.data.objects if o.get(ID_PROPERTY) == compare_id]
    return sorted(found, key=lambda o: int(o.get(INDEX_PROPERTY, 0)))


def landed_job_ids(compare_id: str) -> set[str]:
    key = f"{importer.PROPERTY_PREFIX}job_id"
    return {o[key] for o in row_objects(compare_id) if key in o}


def land(obj: bpy.types.Object, entry: CompareEntry) -> bpy.types.Object:
    """Put an imported result into its compare's row with its label; returns the label."""
    collection = compare_collection()
    for old in list(obj.users_collection):
        old.objects.unlink(obj)
    collection.objects.link(obj)
    obj[ID_PROPERTY] = entry.key.compare_id
    obj[INDEX_PROPERTY] = entry.key.index
    record_figures(obj, entry)
    label = _make_label(obj, entry, collection)
    lay_out(entry.key.compare_id)
    return label


def record_figures(obj: bpy.types.Object, entry: CompareEntry) -> None:
    """The figures the table shows, kept on the object (they outlive the backend's job)."""
    obj[f"{PREFIX}model"] = entry.key.model
    obj[f"{PREFIX}seconds"] = round(entry.seconds, 3) if entry.seconds is not None else -1.0
    obj[f"{PREFIX}faces"] = entry.faces if entry.faces is not None else -1
    # -1: the job ran on the CPU, where there is no VRAM to measure
    vram = entry.peak_vram_mb
    obj[f"{PREFIX}peak_vram_mb"] = round(vram, 1) if vram is not None else -1.0


def label_text(entry: CompareEntry) -> str:
    """Two lines: the model, then time, faces and peak VRAM."""
    seconds = f"{entry.seconds:.1f} s" if entry.seconds is not None else "? s"
    faces = f"{entry.faces:,} faces" if entry.faces is not None else "? faces"
    return f"{entry.key.model}\n{seconds} · {faces} · {vram_text(entry.peak_vram_mb)}"


def _make_label(obj: bpy.types.Object, entry: CompareEntry,
                collection: bpy.types.Collection) -> bpy.types.Object:
    curve = bpy.data.curves.new(f"{obj.name} label", type="FONT")
    curve.body = label_text(entry)
    curve.align_x = "CENTER"
    curve.align_y = "BOTTOM"
    label = bpy.data.objects.new(f"{obj.name} label", curve)
    label[LABEL_PROPERTY] = entry.key.compare_id
    label.visible_shadow = False  # a render shows the text, not its shadow on the result
    collection.objects.link(label)
    label.parent = obj
    return label


def labels_of(obj: bpy.types.Object) -> list[bpy.types.Object]:
    return [child for child in obj.children if LABEL_PROPERTY in child]


def _world_bounds(obj: bpy.types.Object) -> tuple[Vector, Vector]:
    corners = [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    return low, high


def lay_out(compare_id: str) -> None:
    """Place the row's results side by side from its start, and each label above its result."""
    origin = row_origin(compare_id)
    objects = row_objects(compare_id)
    if origin is None or not objects:
        return
    bpy.context.view_layer.update()
    widths = [_width(obj) for obj in objects]
    x = origin[0]
    for index, (obj, width) in enumerate(zip(objects, widths, strict=True)):
        if index:
            x += max(MIN_GAP, GAP_FRACTION * max(width, widths[index - 1]))
        # The origin is the bottom centre of the bounds (importer.py): x is the left edge.
        obj.location = (x + width / 2, origin[1], origin[2])
        x += width
    bpy.context.view_layer.update()
    tallest = max(_world_bounds(obj)[1].z - _world_bounds(obj)[0].z for obj in objects) or 1.0
    for obj in objects:
        low, high = _world_bounds(obj)
        top_centre = Vector(((low.x + high.x) / 2, (low.y + high.y) / 2, high.z))
        for label in labels_of(obj):
            label.data.size = LABEL_SIZE_FRACTION * tallest
            # Upright, facing the front view (-Y), centred above the result: set in world
            # space through the parent so the result's own scale does not size the text.
            world = (Matrix.Translation(top_centre + Vector((0, 0, LABEL_LIFT * tallest)))
                     @ Matrix.Rotation(math.radians(90), 4, "X"))
            label.matrix_parent_inverse = Matrix.Identity(4)
            label.matrix_world = world
    bpy.context.view_layer.update()


def _width(obj: bpy.types.Object) -> float:
    low, high = _world_bounds(obj)
    return high.x - low.x


def keep(obj: bpy.types.Object) -> bpy.types.Object:
    """Keep ``obj``: into the Dream CAD collection at the row's start; the row and labels go."""
    compare_id = obj.get(ID_PROPERTY)
    origin = row_origin(compare_id) or tuple(obj.location)
    for other in row_objects(compare_id):
        if other is not obj:
            _remove_with_children(other)
    for label in labels_of(obj):
        _remove(label)
    for other in [o for o in bpy.data.objects if o.get(LABEL_PROPERTY) == compare_id]:
        _remove(other)  # a label whose result was deleted by hand
    collection = importer.dreamcad_collection()
    for old in list(obj.users_collection):
        old.objects.unlink(obj)
    collection.objects.link(obj)
    del obj[ID_PROPERTY]  # no longer in a row; its figures stay as custom properties
    del obj[INDEX_PROPERTY]
    obj.location = origin
    _forget_row(compare_id)
    compare = bpy.data.collections.get(COLLECTION_NAME)
    if compare is not None and not compare.all_objects and not compare.get(ROWS_PROPERTY):
        bpy.data.collections.remove(compare)
    importer.select_only(obj)
    return obj


def _remove_with_children(obj: bpy.types.Object) -> None:
    for child in list(obj.children):
        _remove(child)
    _remove(obj)


def _remove(obj: bpy.types.Object) -> None:
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is not None and data.users == 0:
        if isinstance(data, bpy.types.Mesh):
            bpy.data.meshes.remove(data)
        elif isinstance(data, bpy.types.Curve):
            bpy.data.curves.remove(data)
