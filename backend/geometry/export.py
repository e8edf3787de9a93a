"""Stage 5, export: write the finished mesh as GLB (default), OBJ+MTL (zipped), PLY or STL.

The GLB is built by hand (JSON chunk + binary chunk): glTF 2.0 metallic-roughness material with
the baked base colour, tangent-space normal map and, when baked, a metallic-roughness texture;
POSITION / NORMAL / TANGENT / TEXCOORD_0 and uint32 indices. Every format gets the same placement:
+Y up (the backend's frame already is), origin at the bottom centre of the bounding box, and an
optional uniform scale to a real-world height in metres. PLY carries per-vertex colours sampled
from the base colour map; STL is geometry only.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass, field

import numpy as np

from backend.geometry import png
from backend.geometry.bounds import bounds

FORMATS = ("glb", "obj", "ply", "stl")
MEDIA_TYPES = {
    "glb": "model/gltf-binary",
    "obj": "application/zip",
    "ply": "application/octet-stream",
    "stl": "model/stl",
}


@dataclass
class LODGeometry:
    """One coarser level of detail sharing the LOD0 material: vertices (k, 3), faces (j, 3),
    normals (k, 3), uvs (k, 2) and tangents (k, 4) or None, as in ExportMesh."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray | None = None
    tangents: np.ndarray | None = None


@dataclass
class ExportMesh:
    """vertices (n, 3) float32, faces (m, 3), normals (n, 3), uvs (n, 2) glTF convention,
    tangents (n, 4), weld (n,) ids joining UV-seam copies; maps as from bake.BakedMaps.

    ``lods`` (GLB only) are LOD1.. sharing this mesh's material; with them the GLB holds a
    node ``<name>`` whose children ``<name>_LOD0``.. are the levels (the suffix Unity and
    Unreal group by). ``quad_pairs`` > 0 says the first 2 x quad_pairs faces are quads split
    in pairs (faces 2i and 2i+1, sharing the quad's diagonal), recorded in the mesh's extras so
    an importer can join them back.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray | None = None
    tangents: np.ndarray | None = None
    weld: np.ndarray | None = None
    base_color: np.ndarray | None = None
    normal_map: np.ndarray | None = None
    metallic_roughness: np.ndarray | None = None
    roughness: float = 0.8
    metallic: float = 0.0
    name: str = "dreamcad"
    lods: list[LODGeometry] = field(default_factory=list)
    quad_pairs: int = 0
    # The base colour's alpha is the model's opacity (an alpha field was baked): RGBA, blended.
    # Otherwise a 4th channel (e.g. an incoming texture's) is dropped, as before.
    alpha_blend: bool = False


def place_on_ground(vertices: np.ndarray, height_m: float | None = None) -> np.ndarray:
    """Move vertices (n, 3) so the bbox bottom centre is the origin; scale to ``height_m``."""
    anchor, factor = _ground_anchor(vertices, height_m)
    placed = vertices.astype(np.float64) - anchor
    if factor != 1.0:
        placed *= factor
    return placed.astype(np.float32)


def ground_placement(vertices: np.ndarray, height_m: float | None = None) -> np.ndarray:
    """(4, 4) float64: the affine map ``place_on_ground`` applies to ``vertices`` (n, 3), for
    content that must follow the mesh (a model's extra files)."""
    anchor, factor = _ground_anchor(vertices, height_m)
    matrix = np.eye(4)
    matrix[:3, :3] *= factor
    matrix[:3, 3] = -anchor * factor
    return matrix


def _ground_anchor(vertices: np.ndarray, height_m: float | None) -> tuple[np.ndarray, float]:
    """(the bbox bottom centre (3,) float64, the scale to ``height_m`` or 1)."""
    low, high = bounds(vertices)
    anchor = np.array([(low[0] + high[0]) / 2, low[1], (low[2] + high[2]) / 2], np.float64)
    if height_m is None:
        return anchor, 1.0
    return anchor, height_m / max(float(high[1] - low[1]), 1e-12)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an (h, w[, 1..4]) uint8 image (png.py: banded, on threads)."""
    return png.encode(image)


def export(mesh: ExportMesh, output_format: str) -> bytes:
    """The file bytes of ``mesh`` in ``output_format`` (one of FORMATS)."""
    writers = {"glb": write_glb, "obj": write_obj_zip, "ply": write_ply, "stl": write_stl}
    return writers[output_format](mesh)


class _BinaryBuffer:
    """Accumulates 4-byte-aligned buffer views and accessors for the GLB."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, payload: bytes, target: int | None = None) -> int:
        offset = len(self.data)
        self.data += payload
        self.data += b"\0" * (-len(self.data) % 4)
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(payload)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int, bounds: bool = False) -> int:
        component = 5125 if array.dtype == np.uint32 else 5126
        view = self.view(np.ascontiguousarray(array).tobytes(), target)
        accessor = {"bufferView": view, "componentType": component, "count": len(array)}
        accessor["type"] = kind
        if bounds:
            accessor["min"] = array.min(axis=0).tolist()
            accessor["max"] = array.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def has_alpha(base_color: np.ndarray | None) -> bool:
    """A base colour map (s, s, 4) with some texel below full opacity."""
    if base_color is None or base_color.shape[2] != 4:
        return False
    return bool((base_color[..., 3] < 255).any())


def write_glb(mesh: ExportMesh) -> bytes:
    """Binary glTF 2.0 bytes of ``mesh`` (and its LODs) with a metallic-roughness material."""
    buffer = _BinaryBuffer()
    levels = [LODGeometry(mesh.vertices, mesh.faces, mesh.normals, mesh.uvs, mesh.tangents)]
    levels += mesh.lods
    primitives = [_primitive(buffer, level, mesh.normal_map is not None) for level in levels]
    blend = mesh.alpha_blend and has_alpha(mesh.base_color)
    pending = [
        image if image is mesh.base_color and blend else image[..., :3]
        for image in (mesh.base_color, mesh.metallic_roughness, mesh.normal_map)
        if image is not None and mesh.uvs is not None
    ]
    # All maps' row bands are deflated side by side (png.py), not one map per thread.
    encoded = dict(zip(map(id, pending), png.encode_many(pending), strict=True))
    images, textures = [], []

    def texture(image: np.ndarray) -> dict:
        png = encoded[id(image)]
        images.append({"bufferView": buffer.view(png), "mimeType": "image/png"})
        textures.append({"source": len(images) - 1, "sampler": 0})
        return {"index": len(textures) - 1}

    pbr: dict = {"metallicFactor": float(mesh.metallic), "roughnessFactor": float(mesh.roughness)}
    material: dict = {"name": f"{mesh.name}_material", "pbrMetallicRoughness": pbr}
    if mesh.uvs is not None:
        pending_images = iter(pending)
        if mesh.base_color is not None:
            pbr["baseColorTexture"] = texture(next(pending_images))
        if mesh.metallic_roughness is not None:
            pbr["metallicRoughnessTexture"] = texture(next(pending_images))
            pbr["metallicFactor"] = pbr["roughnessFactor"] = 1.0
        if mesh.normal_map is not None:
            material["normalTexture"] = texture(next(pending_images))
    if blend and mesh.uvs is not None:  # the model made see-through parts: RGBA, blended
        material["alphaMode"] = "BLEND"
    if mesh.lods:
        names = [f"{mesh.name}_LOD{level}" for level in range(len(levels))]
        nodes = [{"name": mesh.name, "children": list(range(1, len(levels) + 1))}]
        nodes += [{"mesh": index, "name": name} for index, name in enumerate(names)]
    else:
        names = [mesh.name]
        nodes = [{"mesh": 0, "name": mesh.name}]
    meshes = [
        {"name": name, "primitives": [primitive]}
        for name, primitive in zip(names, primitives, strict=True)
    ]
    if mesh.quad_pairs:  # on the mesh: importers (Blender's) keep mesh extras as properties
        meshes[0]["extras"] = {"quad_pairs": int(mesh.quad_pairs)}
    document: dict = {
        "asset": {"version": "2.0", "generator": "Dream CAD geometry pipeline"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": [material],
        "accessors": buffer.accessors,
        "bufferViews": buffer.views,
        "buffers": [{"byteLength": len(buffer.data)}],
    }
    if images:
        document["images"] = images
        document["textures"] = textures
        document["samplers"] = [{"magFilter": 9729, "minFilter": 9987}]
    header = json.dumps(document, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 4)
    total = 12 + 8 + len(header) + 8 + len(buffer.data)
    return b"".join(
        [
            struct.pack("<4sII", b"glTF", 2, total),
            struct.pack("<I4s", len(header), b"JSON"),
            header,
            struct.pack("<I4s", len(buffer.data), b"BIN\0"),
            bytes(buffer.data),
        ]
    )


def _primitive(buffer: _BinaryBuffer, level: LODGeometry, normal_map: bool) -> dict:
    """Accessors of one level's vertex data and indices, as a triangle primitive of material 0."""
    array_buffer, element_buffer = 34962, 34963
    attributes = {
        "POSITION": buffer.accessor(level.vertices.astype(np.float32), "VEC3", array_buffer, True),
        "NORMAL": buffer.accessor(_unit(level.normals), "VEC3", array_buffer),
    }
    if level.uvs is not None:
        uvs = level.uvs.astype(np.float32)
        attributes["TEXCOORD_0"] = buffer.accessor(uvs, "VEC2", array_buffer)
        if level.tangents is not None and normal_map:
            tangents = level.tangents.astype(np.float32).copy()
            tangents[:, :3] = _unit(tangents[:, :3])
            attributes["TANGENT"] = buffer.accessor(tangents, "VEC4", array_buffer)
    indices = buffer.accessor(level.faces.astype(np.uint32).reshape(-1), "SCALAR", element_buffer)
    return {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit float32 rows of (n, 3); zero rows become +Y (the validator rejects non-unit)."""
    v = vectors.astype(np.float64)
    length = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.where(length > 1e-12, v / np.maximum(length, 1e-30), [[0.0, 1.0, 0.0]])
    return v.astype(np.float32)


def write_obj_zip(mesh: ExportMesh) -> bytes:
    """A zip of model.obj, model.mtl and the maps as PNG (OBJ's v runs up: 1 - glTF v)."""
    lines = [f"# Dream CAD\nmtllib {mesh.name}.mtl\no {mesh.name}\n"]
    lines.append(_rows("v", mesh.vertices, "%.6f"))
    lines.append(_rows("vn", _unit(mesh.normals), "%.5f"))
    files: dict[str, bytes] = {}
    material = [f"newmtl {mesh.name}_material", "Kd 1.000 1.000 1.000"]
    material += [f"Pr {mesh.roughness:.3f}", f"Pm {mesh.metallic:.3f}"]
    index = mesh.faces + 1
    if mesh.uvs is not None:
        lines.append(_rows("vt", np.column_stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]]), "%.6f"))
        corners = np.stack([index, index, index], axis=2).reshape(len(index), 9)
        lines.append(_rows("f", corners, "%d", "%d/%d/%d %d/%d/%d %d/%d/%d"))
        maps = [
            (key, image[..., :3], file_name)
            for key, image, file_name in (
                ("map_Kd", mesh.base_color, "base_color.png"),
                ("map_Bump", mesh.normal_map, "normal.png"),
                ("map_Pr", mesh.metallic_roughness, "metallic_roughness.png"),
            )
            if image is not None
        ]
        material += [f"{key} {file_name}" for key, _image, file_name in maps]
        encoded = png.encode_many([image for _key, image, _name in maps])
        files.update((name, data) for (_key, _image, name), data in zip(maps, encoded, strict=True))
    else:
        corners = np.stack([index, index], axis=2).reshape(len(index), 6)
        lines.append(_rows("f", corners, "%d", "%d//%d %d//%d %d//%d"))
    lines.append(f"usemtl {mesh.name}_material\n")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{mesh.name}.obj", "".join(lines))
        archive.writestr(f"{mesh.name}.mtl", "\n".join(material) + "\n")
        for file_name, payload in files.items():
            archive.writestr(file_name, payload)
    return out.getvalue()


def _rows(tag: str, values: np.ndarray, number: str, pattern: str | None = None) -> str:
    text = io.StringIO()
    columns = values.shape[1]
    np.savetxt(text, values, fmt=f"{tag} " + (pattern or " ".join([number] * columns)))
    return text.getvalue()


def _welded(mesh: ExportMesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (k, 3), faces (m, 3), first split copy (k,)) with seam copies joined."""
    if mesh.weld is None:
        return mesh.vertices, mesh.faces, np.arange(len(mesh.vertices))
    _ids, first, inverse = np.unique(mesh.weld, return_index=True, return_inverse=True)
    return mesh.vertices[first], inverse[mesh.faces], first


def write_ply(mesh: ExportMesh) -> bytes:
    """Binary little-endian PLY: positions, normals, sRGB vertex colours from the base colour."""
    vertices, faces, first = _welded(mesh)
    normals = _unit(mesh.normals[first])
    colors = np.full((len(vertices), 3), 204, dtype=np.uint8)
    if mesh.base_color is not None and mesh.uvs is not None:
        h, w = mesh.base_color.shape[:2]
        uv = mesh.uvs[first]
        cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
        rows = np.clip((uv[:, 1] * h).astype(int), 0, h - 1)
        colors = mesh.base_color[rows, cols, :3]
    record = np.dtype([("p", "<f4", 3), ("n", "<f4", 3), ("c", "u1", 3)])
    table = np.empty(len(vertices), dtype=record)
    table["p"], table["n"], table["c"] = vertices, normals, colors
    face_table = np.empty(len(faces), dtype=[("k", "u1"), ("i", "<i4", 3)])
    face_table["k"], face_table["i"] = 3, faces
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment Dream CAD\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    return header.encode() + table.tobytes() + face_table.tobytes()


def write_stl(mesh: ExportMesh) -> bytes:
    """Binary STL: one facet normal and three corners per face."""
    vertices, faces, _ = _welded(mesh)
    corners = vertices[faces].astype(np.float32)
    normals = _unit(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]))
    record = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    table = np.zeros(len(faces), dtype=record)
    table["n"], table["v"] = normals, corners
    header = b"Dream CAD binary STL".ljust(80, b" ")
    return header + struct.pack("<I", len(faces)) + table.tobytes()
