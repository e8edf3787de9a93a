"""Read the mesh an artist sends (one GLB, protocol 3's ``mesh``) into a RawAsset, or refuse it.

Every mesh of every node is taken with its node transform applied (the scene as Blender exports
it). The colour source is what the materials say: a base colour texture (times its
``baseColorFactor``), vertex colours (``COLOR_0``), or, for a part with neither, the flat
``baseColorFactor`` as vertex colours, so a plain-coloured material is not baked grey. Parts with
different textures share one atlas (a grid of the textures, their UVs moved into their cell), so
every texture is baked, not only the first. Refusals are coded and name the field:
``invalid_mesh`` (not a GLB, unreadable, no triangles) and ``mesh_too_large``.
"""

from __future__ import annotations

import io
import math

import numpy as np

from backend.geometry import mesh_io
from backend.geometry.glb_header import check_triangle_count
from backend.geometry.raw_asset import RawAsset
from shared_protocol.errors import ErrorCode, ProtocolError

GLB_MAGIC = b"glTF"
ATLAS_CELL_MAX = 2048  # a texture cell in the atlas is at most this wide and high
NEUTRAL = 0.8  # colour of a part with no material at all


def read_glb(data: bytes, field: str = "mesh.data", name: str = "") -> RawAsset:
    """``data`` (GLB bytes) as a RawAsset; ProtocolError naming ``field`` when it is not one."""
    if data[:4] != GLB_MAGIC:
        raise ProtocolError(
            ErrorCode.INVALID_MESH,
            f"the mesh is not a binary glTF (it starts with {data[:4]!r}, not b'glTF')",
            field=field,
        )
    import trimesh

    try:
        loaded = trimesh.load(io.BytesIO(data), file_type="glb", process=False)
        parts = mesh_io._parts(loaded)
    except Exception as error:  # trimesh raises many types for a broken file
        raise ProtocolError(
            ErrorCode.INVALID_MESH, f"the GLB could not be read: {error}", field=field
        ) from error
    faces = sum(len(part.faces) for part in parts)
    check_triangle_count(faces, field, "the GLB holds no triangles")
    return merge_parts(parts, name or "mesh")


def merge_parts(parts: list, name: str) -> RawAsset:
    """One RawAsset from trimesh parts: textures atlased, flat materials as vertex colours."""
    vertices = [np.asarray(p.vertices, dtype=np.float32) for p in parts]
    faces, offset = [], 0
    for part, part_vertices in zip(parts, vertices, strict=True):
        faces.append(np.asarray(part.faces, dtype=np.int64) + offset)
        offset += len(part_vertices)
    textured = [_textured(part) for part in parts]
    warnings: list[str] = []
    texture, uvs = None, None
    if any(t is not None for t in textured):
        texture, cells = _atlas([t[1] for t in textured if t is not None])
        cell_of = iter(cells)
        uvs = np.vstack(
            [
                _into_cell(t[0], next(cell_of), warnings) if t is not None
                else np.zeros((len(v), 2), np.float32)
                for t, v in zip(textured, vertices, strict=True)
            ]
        )  # fmt: skip
    colors = [
        None if t is not None else _flat_or_vertex_colors(part, len(v))
        for part, t, v in zip(parts, textured, vertices, strict=True)
    ]
    vertex_colors = None
    if texture is None and any(c is not None for c in colors):
        vertex_colors = np.vstack(
            [c if c is not None else np.full((len(v), 3), NEUTRAL, np.float32)
             for c, v in zip(colors, vertices, strict=True)]
        )  # fmt: skip
    elif texture is not None and any(c is not None for c in colors):
        # Untextured parts beside textured ones: their colour is painted into a cell of its own.
        texture, uvs = _add_flat_cells(texture, uvs, colors, vertices, textured)
    return RawAsset(
        np.vstack(vertices), np.vstack(faces), vertex_colors=vertex_colors, uvs=uvs,
        texture=texture, name=name, warnings=warnings,
    )  # fmt: skip


def _textured(part) -> tuple[np.ndarray, np.ndarray] | None:
    """(uvs, RGBA texture times baseColorFactor) of a textured part, or None."""
    uv, texture = mesh_io._texture_of(part.visual)
    if texture is None or uv is None:
        return None
    rgba = _rgba(texture)
    factor = _factor(part.visual)
    if factor is not None and not np.allclose(factor, 1.0):
        rgba = np.clip(rgba.astype(np.float32) * factor, 0, 255).astype(np.uint8)
    return uv, rgba


def _rgba(texture: np.ndarray) -> np.ndarray:
    if texture.ndim == 2:
        texture = np.repeat(texture[:, :, None], 3, axis=2)
    if texture.shape[2] == 3:
        texture = np.concatenate([texture, np.full((*texture.shape[:2], 1), 255, np.uint8)], 2)
    return np.ascontiguousarray(texture[:, :, :4], dtype=np.uint8)


def _factor(visual) -> np.ndarray | None:
    """baseColorFactor as (4,) floats in [0, 1], or None."""
    material = getattr(visual, "material", None)
    factor = getattr(material, "baseColorFactor", None)
    if factor is None:
        return None
    factor = np.asarray(factor, dtype=np.float32).reshape(-1)[:4]
    return factor / 255.0 if factor.max() > 1.0 else factor


def _flat_or_vertex_colors(part, count: int) -> np.ndarray | None:
    """Vertex colours (COLOR_0), else the material's flat colour, else None."""
    colors = mesh_io._vertex_colors_of(part.visual, count)
    if colors is None:
        attribute = getattr(part.visual, "vertex_attributes", {}).get("color")
        if attribute is not None and len(attribute) == count:
            colors = np.asarray(attribute)[:, :3].astype(np.float32)
            colors = colors / 255.0 if colors.max() > 1.0 else colors
    factor = _factor(part.visual)
    if colors is not None:
        return colors * (factor[:3] if factor is not None else 1.0)
    if factor is None:
        return None
    return np.repeat(factor[None, :3], count, axis=0).astype(np.float32)


def _atlas(textures: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """One texture: a grid of square cells; (column, row, columns) of each input's cell."""
    if len(textures) == 1:
        return textures[0], [(0, 0, 1)]
    from PIL import Image

    side = min(ATLAS_CELL_MAX, max(max(t.shape[:2]) for t in textures))
    columns = math.ceil(math.sqrt(len(textures)))
    rows = math.ceil(len(textures) / columns)
    atlas = np.zeros((rows * side, columns * side, 4), np.uint8)
    cells = []
    for index, texture in enumerate(textures):
        row, column = divmod(index, columns)
        cell = np.asarray(Image.fromarray(texture).resize((side, side), Image.Resampling.LANCZOS))
        atlas[row * side:(row + 1) * side, column * side:(column + 1) * side] = cell
        cells.append((column, row, columns))
    # The grid is square in cells, so a cell's UV size is 1 / columns both ways when rows fill;
    # a short last row leaves black cells no UV points at.
    if rows != columns:
        padded = np.zeros((columns * side, columns * side, 4), np.uint8)
        padded[: rows * side] = atlas
        atlas = padded
    return atlas, cells


def _into_cell(uv: np.ndarray, cell: tuple[int, int, int], warnings: list[str]) -> np.ndarray:
    """UVs (glTF, v down) moved into a cell of a ``columns`` x ``columns`` atlas."""
    column, row, columns = cell
    if columns == 1:
        return uv
    if (uv < -1e-3).any() or (uv > 1 + 1e-3).any():
        warnings.append("a tiling texture (UVs outside 0..1) was clamped into the atlas")
    uv = np.clip(uv, 0.0, 1.0)
    return ((uv + np.array([column, row], np.float32)) / columns).astype(np.float32)


def _add_flat_cells(
    texture: np.ndarray,
    uvs: np.ndarray,
    colors: list[np.ndarray | None],
    vertices: list[np.ndarray],
    textured: list,
) -> tuple[np.ndarray, np.ndarray]:
    """Append a strip of flat colours under the atlas; untextured parts' UVs point into it."""
    flat = [c for c, t in zip(colors, textured, strict=True) if t is None]
    means = [np.full(3, NEUTRAL, np.float32) if c is None else c.mean(axis=0) for c in flat]
    height, width = texture.shape[:2]
    band = max(8, height // 16)
    strip = np.zeros((band, width, 4), np.uint8)
    step = width / len(means)
    for index, colour in enumerate(means):
        strip[:, int(index * step):int((index + 1) * step), :3] = np.round(colour * 255)
        strip[:, :, 3] = 255
    combined = np.concatenate([texture, strip], axis=0)
    scale = height / (height + band)
    uvs = uvs.copy()
    uvs[:, 1] *= scale
    start, flat_index = 0, 0
    for t, v in zip(textured, vertices, strict=True):
        if t is None:
            centre = ((flat_index + 0.5) * step / width, (height + band / 2) / (height + band))
            uvs[start:start + len(v)] = centre
            flat_index += 1
        start += len(v)
    return combined, uvs
