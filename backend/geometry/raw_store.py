"""Keep a model's raw output on disk, compactly, so a job can be optimized again without the model.

A :class:`RawAsset` holds arrays and, for some models, callables (a colour or material field
that queries a network). Fields cannot be stored, so they are sampled at the raw mesh's
vertices: a raw mesh is dense (marching cubes), so per-vertex samples are about as fine as the
texels of the bake. On load the material samples come back as a nearest-vertex field.
Everything else (UV texture, painted views with their cameras) is kept as it is.

The file is one compressed ``.npz`` (no pickle): float32 positions, int32 faces, colours as
uint8, images as uint8. Its size is what ``raw_output_mb`` in a job's manifest reports.

Keeping it must not lengthen a job: the fields are sampled in the job's thread (they query the
model) by :func:`raw_arrays`, then :func:`write_raw` compresses and writes on a thread of its
own (``overlap.Beside``; zlib lets go of the GIL) while the geometry pipeline runs, and the
job waits for it only at the end. Deflate at level 1, not numpy's default
6: on an 800k-face marching-cubes mesh 0.25 s instead of 1.1 s for the same 6 MB (5.94 vs
6.01 MB); level 1 is still what ``np.load`` reads.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from backend.geometry.raw_asset import PaintedViews, RawAsset

RAW_FILE = "raw.npz"
FIELD_CHUNK = 65_536  # points per field query: the same order the baker uses
DEFLATE_LEVEL = 1


def save_raw(raw: RawAsset, path: Path) -> int:
    """Write ``raw`` to ``path`` (atomically); return the file's size in bytes."""
    return write_raw(raw_arrays(raw), path)


def raw_arrays(raw: RawAsset) -> dict[str, np.ndarray]:
    """What ``save_raw`` stores: ``raw``'s arrays, its fields sampled at the vertices."""
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
    return arrays


def write_raw(arrays: dict[str, np.ndarray], path: Path) -> int:
    """``arrays`` as an ``.npz`` at ``path``, written atomically (a ``.partial`` file renamed;
    removed when the write fails); returns the file's size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=DEFLATE_LEVEL) as zf:
            for name, array in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
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
