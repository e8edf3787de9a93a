"""A direct reader for the common binary PLY: one vertex element of scalars, one face element
of triangles. numpy views the file's bytes as records, so an 800k-triangle file reads in
~0.05 s instead of trimesh's ~0.4 s. Anything else (ASCII, big-endian, polygons, extra
elements) returns None, and mesh_io reads the file with trimesh as before.
"""

from __future__ import annotations

import numpy as np

from backend.geometry.raw_asset import RawAsset

_SCALARS = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_MAX_HEADER = 1 << 16


def read(data: bytes, name: str) -> RawAsset | None:
    """``data`` (a PLY file's bytes) as a RawAsset, or None when it is not the simple case."""
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if not data.startswith(b"ply") or end < 0:
        return None
    body = data.index(b"\n", end) + 1
    lines = [line.split() for line in data[:end].decode("ascii", "replace").splitlines()]
    if ["format", "binary_little_endian", "1.0"] not in lines:
        return None
    elements: list[tuple[str, int, list[list[str]]]] = []
    for words in lines:
        if words and words[0] == "element" and len(words) == 3:
            elements.append((words[1], int(words[2]), []))
        elif words and words[0] == "property" and elements:
            elements[-1][2].append(words[1:])
    if [e[0] for e in elements] != ["vertex", "face"]:
        return None
    (_, n_vertices, vertex_props), (_, n_faces, face_props) = elements
    if any(len(p) != 2 or p[0] not in _SCALARS for p in vertex_props):
        return None
    names = [p[1] for p in vertex_props]
    if not {"x", "y", "z"} <= set(names) or len(face_props) != 1:
        return None
    face = face_props[0]
    if len(face) != 4 or face[0] != "list" or face[1] not in _SCALARS or face[2] not in _SCALARS:
        return None
    vertex_type = np.dtype([(n, "<" + _SCALARS[p[0]]) for n, p in zip(names, vertex_props,
                                                                       strict=True)])  # fmt: skip
    face_type = np.dtype(
        [("count", "<" + _SCALARS[face[1]]), ("index", "<" + _SCALARS[face[2]], 3)]
    )
    vertex_bytes = n_vertices * vertex_type.itemsize
    if len(data) < body + vertex_bytes + n_faces * face_type.itemsize:
        return None
    records = np.frombuffer(data, vertex_type, n_vertices, body)
    faces = np.frombuffer(data, face_type, n_faces, body + vertex_bytes)
    if n_faces == 0 or not (faces["count"] == 3).all():
        return None  # polygons or an empty mesh: trimesh's triangulation and messages
    vertices = np.stack([records["x"], records["y"], records["z"]], axis=1).astype(np.float32)
    index = faces["index"].astype(np.int64)
    if index.min() < 0 or index.max() >= n_vertices:
        return None
    colors = None
    if {"red", "green", "blue"} <= set(names) and all(
        records.dtype[c] == np.uint8 for c in ("red", "green", "blue")
    ):
        rgb = np.stack([records["red"], records["green"], records["blue"]], axis=1)
        colors = rgb.astype(np.float32) / 255.0
    return RawAsset(vertices, index, vertex_colors=colors, name=name)
