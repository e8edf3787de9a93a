"""Count a GLB's triangles from its JSON chunk alone, without reading the geometry.

The server admits a mesh on its own thread, which must stay responsive: parsing a
million-triangle GLB there would stall every client. The JSON chunk already says how many
indices (or, unindexed, positions) each triangle primitive has and which nodes draw which mesh,
so the limit (and "is it a GLB at all", "does it hold triangles") is checked in microseconds;
the worker parses the geometry later (mesh_input.py).
"""

from __future__ import annotations

import json
import struct

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.limits import MAX_MESH_FACES

GLB_HEADER = struct.Struct("<4sII")
CHUNK_HEADER = struct.Struct("<II")
JSON_CHUNK = 0x4E4F534A
TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN = 4, 5, 6


def count_triangles(data: bytes, field: str) -> int:
    """Triangles the GLB's scene draws (each node's mesh counted once per node); ProtocolError
    (``invalid_mesh``, ``mesh_too_large``) naming ``field`` unless there are 1..MAX_MESH_FACES."""
    document = _json_chunk(data, field)
    try:
        accessors = document.get("accessors", [])
        per_mesh = [
            sum(_primitive_triangles(p, accessors) for p in mesh.get("primitives", []))
            for mesh in document.get("meshes", [])
        ]
        drawn = [node["mesh"] for node in document.get("nodes", []) if "mesh" in node]
        count = sum(per_mesh[index] for index in drawn)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise ProtocolError(
            ErrorCode.INVALID_MESH, f"the GLB's JSON is not valid glTF ({error!r})", field=field
        ) from error
    return check_triangle_count(count, field, "the GLB draws no triangles")


def check_triangle_count(count: int, field: str, none_message: str) -> int:
    """``count`` when it is 1..MAX_MESH_FACES; else ProtocolError naming ``field``
    (``invalid_mesh`` with ``none_message`` for none, ``mesh_too_large`` for too many)."""
    if count == 0:
        raise ProtocolError(ErrorCode.INVALID_MESH, none_message, field=field)
    if count > MAX_MESH_FACES:
        raise ProtocolError(
            ErrorCode.MESH_TOO_LARGE,
            f"the mesh has {count} triangles; the limit is {MAX_MESH_FACES}",
            field=field,
        )
    return count


def _json_chunk(data: bytes, field: str) -> dict:
    if len(data) < GLB_HEADER.size + CHUNK_HEADER.size:
        raise ProtocolError(ErrorCode.INVALID_MESH, "the mesh is too short for a GLB", field=field)
    magic, version, length = GLB_HEADER.unpack_from(data)
    if magic != b"glTF":
        raise ProtocolError(
            ErrorCode.INVALID_MESH,
            f"the mesh is not a binary glTF (it starts with {magic!r}, not b'glTF')",
            field=field,
            hint="Send a .glb file (glTF Binary); .gltf with separate files, OBJ or FBX are "
            "not taken.",
        )
    if version != 2:
        raise ProtocolError(
            ErrorCode.INVALID_MESH, f"glTF version {version}; only glTF 2.0 is read", field=field
        )
    chunk_length, chunk_type = CHUNK_HEADER.unpack_from(data, GLB_HEADER.size)
    start = GLB_HEADER.size + CHUNK_HEADER.size
    if chunk_type != JSON_CHUNK or start + chunk_length > len(data) or length > len(data):
        raise ProtocolError(ErrorCode.INVALID_MESH, "the GLB is truncated or broken", field=field)
    try:
        document = json.loads(data[start:start + chunk_length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(
            ErrorCode.INVALID_MESH, f"the GLB's JSON chunk does not parse: {error}", field=field
        ) from error
    if not isinstance(document, dict):
        raise ProtocolError(ErrorCode.INVALID_MESH, "the GLB's JSON is not an object", field=field)
    return document


def _primitive_triangles(primitive: dict, accessors: list) -> int:
    mode = primitive.get("mode", TRIANGLES)
    if "indices" in primitive:
        count = int(accessors[primitive["indices"]]["count"])
    else:
        count = int(accessors[primitive["attributes"]["POSITION"]]["count"])
    if mode == TRIANGLES:
        return count // 3
    if mode in (TRIANGLE_STRIP, TRIANGLE_FAN):
        return max(0, count - 2)
    return 0  # points and lines draw no surface
