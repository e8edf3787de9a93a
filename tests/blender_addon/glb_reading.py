"""Read a GLB's JSON and accessors with numpy, for tests that check what an exporter wrote."""

from __future__ import annotations

import json
import struct

import numpy as np

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
               5125: np.uint32, 5126: np.float32}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def chunks(glb: bytes) -> tuple[dict, bytes]:
    """(JSON document, BIN chunk) of a GLB."""
    magic, version, _total = struct.unpack_from("<4sII", glb, 0)
    assert magic == b"glTF" and version == 2
    json_length, _ = struct.unpack_from("<I4s", glb, 12)
    document = json.loads(glb[20 : 20 + json_length])
    offset = 20 + json_length
    bin_length, kind = struct.unpack_from("<I4s", glb, offset)
    assert kind == b"BIN\0"
    return document, glb[offset + 8 : offset + 8 + bin_length]


def accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    """Accessor ``index`` as an (count, width) array (tightly packed views only)."""
    info = document["accessors"][index]
    view = document["bufferViews"][info["bufferView"]]
    dtype = np.dtype(_COMPONENTS[info["componentType"]])
    width = _WIDTHS[info["type"]]
    start = view.get("byteOffset", 0) + info.get("byteOffset", 0)
    stride = view.get("byteStride", dtype.itemsize * width)
    assert stride == dtype.itemsize * width, "interleaved views are not read here"
    count = info["count"]
    data = np.frombuffer(binary, dtype=dtype, count=count * width, offset=start)
    return data.reshape(count, width)


def triangles(document: dict, binary: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    """(positions (n, 3), triangles (m, 3)) of every primitive of every mesh."""
    out = []
    for mesh in document["meshes"]:
        for primitive in mesh["primitives"]:
            positions = accessor(document, binary, primitive["attributes"]["POSITION"])
            indices = accessor(document, binary, primitive["indices"]).reshape(-1, 3)
            out.append((positions.astype(np.float64), indices.astype(np.int64)))
    return out


def signed_volume(positions: np.ndarray, faces: np.ndarray) -> float:
    """Volume of a closed triangle mesh: positive when its faces wind outwards."""
    a, b, c = (positions[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
