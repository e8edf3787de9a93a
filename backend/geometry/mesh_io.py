"""Load a mesh a user brings (PLY, OBJ, GLB / glTF) into a RawAsset for the pipeline.

Vertex colours and a base colour texture with its UVs are kept so the bake can carry them over.
Scenes are flattened with their node transforms applied; when several parts carry different
textures only the first texture is kept (said in the asset's warnings). trimesh does the parsing,
but for the common binary PLY of triangles (ply_binary.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.geometry import ply_binary
from backend.geometry.raw_asset import RawAsset
from shared_protocol.errors import ErrorCode, ProtocolError

SUFFIXES = (".ply", ".obj", ".glb", ".gltf", ".stl")


def load_mesh(path: Path | str) -> RawAsset:
    """Read ``path`` into a RawAsset (vertices, faces, vertex colours or UVs + texture)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"{path.name}: unsupported mesh format {path.suffix!r}",
            field="mesh",
            hint=f"Bring one of: {', '.join(SUFFIXES)}.",
        )
    if not path.is_file():
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"no such file: {path}", field="mesh")
    if path.suffix.lower() == ".ply":  # the common binary layout without trimesh: ~8x faster
        fast = ply_binary.read(path.read_bytes(), path.stem)
        if fast is not None:
            return fast
    import trimesh  # here: importing it costs ~0.3 s, which the fast path need not pay

    try:
        loaded = trimesh.load(path, process=False)
    except Exception as error:  # trimesh raises many types for a broken file
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"{path.name} could not be read: {error}", field="mesh"
        ) from error
    parts = _parts(loaded)
    if not parts:
        raise ProtocolError(ErrorCode.GEOMETRY_FAILED, f"{path.name} holds no triangles")
    return _merge(parts, path.stem)


def _parts(loaded) -> list:
    """Triangle meshes of a Mesh or Scene, node transforms applied."""
    import trimesh

    if isinstance(loaded, trimesh.Scene):
        meshes = []
        for node in loaded.graph.nodes_geometry:
            transform, name = loaded.graph[node]
            geometry = loaded.geometry[name]
            if isinstance(geometry, trimesh.Trimesh) and len(geometry.faces):
                copy = geometry.copy()
                copy.apply_transform(transform)
                meshes.append(copy)
        return meshes
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
        return [loaded]
    return []


def _merge(parts: list, name: str) -> RawAsset:
    vertices, faces, colors, uvs = [], [], [], []
    texture, warnings, offset = None, [], 0
    for part in parts:
        vertices.append(np.asarray(part.vertices, dtype=np.float32))
        faces.append(np.asarray(part.faces, dtype=np.int64) + offset)
        offset += len(part.vertices)
        visual = part.visual
        part_uv, part_texture = _texture_of(visual)
        if part_texture is not None and texture is None:
            texture = part_texture
        elif part_texture is not None:
            warnings.append("several textures: only the first one is baked")
        uvs.append(part_uv)
        colors.append(_vertex_colors_of(visual, len(part.vertices)))
    result_uvs = None
    if texture is not None:
        result_uvs = np.vstack(
            [
                u if u is not None else np.zeros((len(v), 2), np.float32)
                for u, v in zip(uvs, vertices, strict=True)
            ]
        )
    result_colors = None
    if any(c is not None for c in colors):
        result_colors = np.vstack(
            [
                c if c is not None else np.full((len(v), 3), 0.8, np.float32)
                for c, v in zip(colors, vertices, strict=True)
            ]
        )
    return RawAsset(
        np.vstack(vertices),
        np.vstack(faces),
        vertex_colors=result_colors,
        uvs=result_uvs,
        texture=texture,
        name=name,
        warnings=warnings,
    )


def _texture_of(visual) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(uvs (n, 2) glTF convention, texture (h, w, 3|4) uint8) of a textured visual, or Nones."""
    if getattr(visual, "kind", None) != "texture" or visual.uv is None:
        return None, None
    material = visual.material
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    if image is None:
        return None, None
    pixels = np.asarray(image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image)
    uv = np.asarray(visual.uv, dtype=np.float32).copy()
    uv[:, 1] = 1.0 - uv[:, 1]  # trimesh keeps OpenGL's v-up; RawAsset uses glTF's v-down
    return uv, pixels


def _vertex_colors_of(visual, count: int) -> np.ndarray | None:
    """(n, 3) float colours in [0, 1] from per-vertex colours, or None."""
    if getattr(visual, "kind", None) != "vertex":
        return None
    colors = np.asarray(visual.vertex_colors)
    if colors.shape[0] != count:
        return None
    return colors[:, :3].astype(np.float32) / 255.0
