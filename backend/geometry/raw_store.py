"""Keep a model's raw output on disk, compactly, so a job can be optimized again without the model.

A :class:`RawAsset` holds arrays and, for some models, callables (a colour or material field
that queries a network). Fields cannot be stored, so they are sampled at the raw mesh's
vertices: a raw mesh is dense (marching cubes), so per-vertex samples are about as fine as the
texels of the bake. On load the material samples come back as a nearest-vertex field.
Everything else (UV texture, painted views with their cameras) is kept as it is.

The file is one compressed ``.npz`` (no pickle): float32 positions, int32 faces, colours as
uint8, images as uint8. Its size is what ``raw_bytes`` in a job's manifest timings reports.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from backend.geometry.raw_asset import PaintedViews, RawAsset

RAW_FILE = "raw.npz"
FIELD_CHUNK = 65_536  # points per field query: the same order the baker uses


def save_raw(raw: RawAsset, path: Path) -> int:
    """Write ``raw`` to ``path`` (atomically); return the file's size in bytes."""
    arrays: dict[str, np.ndarray] = {
        "vertices": raw.vertices.astype(np.float32),
        "faces": raw.faces.astype(np.int32 if len(raw.vertices) < 2**31 else np.int64),
        "scalars": np.array([raw.roughness, raw.metallic], np.float32),
        "name": np.frombuffer(raw.name.encode(), np.uint8),
    }
    colors = raw.vertex_colors
    if colors is None and raw.color_field is not None and raw.views is None:
        colors = _sample(raw.color_field, raw.vertices)[:, :3]
    if colors is not None:
        arrays["vertex_colors"] = _to_u8(colors)
    if raw.uvs is not None and raw.texture is not None:
        arrays["uvs"] = raw.uvs.astype(np.float32)
        arrays["texture"] = raw.texture
    if raw.views is not None:
        arrays["view_images"] = raw.views.images
        arrays["view_cameras"] = raw.views.cameras
        arrays["view_weights"] = raw.views.weights
    if raw.material_field is not None:
        arrays["material"] = _to_u8(_sample(raw.material_field, raw.vertices)[:, :2])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)
    return path.stat().st_size


def load_raw(path: Path) -> RawAsset:
    """The RawAsset ``save_raw`` wrote (fields as their vertex samples)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    views = None
    if "view_images" in arrays:
        views = PaintedViews(
            arrays["view_images"], arrays["view_cameras"], arrays["view_weights"]
        )
    material = None
    if "material" in arrays:
        material = _nearest_vertex_field(arrays["vertices"], arrays["material"] / 255.0)
    roughness, metallic = (float(v) for v in arrays["scalars"])
    return RawAsset(
        arrays["vertices"],
        arrays["faces"],
        vertex_colors=arrays["vertex_colors"] / np.float32(255.0)
        if "vertex_colors" in arrays else None,
        uvs=arrays.get("uvs"),
        texture=arrays.get("texture"),
        views=views,
        material_field=material,
        roughness=roughness,
        metallic=metallic,
        name=arrays["name"].tobytes().decode(),
    )  # fmt: skip


def _sample(field, points: np.ndarray) -> np.ndarray:
    chunks = [
        np.asarray(field(points[start:start + FIELD_CHUNK]), dtype=np.float32)
        for start in range(0, len(points), FIELD_CHUNK)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 3), np.float32)


def _to_u8(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def _nearest_vertex_field(vertices: np.ndarray, values: np.ndarray):
    """points -> the values of the nearest stored vertex (what the samples can give back)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(vertices)
    table = values.astype(np.float32)

    def field(points: np.ndarray) -> np.ndarray:
        _, index = tree.query(points, workers=-1)
        return table[index]

    return field
