"""Benchmark: the export stage alone, writing a finished asset's GLB (maps encoded as PNG).

The input is a GLB the pipeline wrote (e.g. benchmarks/cpu_postprocess.py's ``out_2.glb``: the
800k-triangle blob at 20k faces with 2048 px base colour + normal maps): its vertex data and
maps are read back into an ``ExportMesh`` and written again with this tree's export code. One
warm-up, then ``--repeats`` runs reported as median / min / max of wall time and of the
process's CPU time (all threads: on a shared machine wall time stretches, CPU time much less),
beside the output's size per image and the check that every map decodes to the same pixels.

    .venv/backend/bin/python benchmarks/export_glb.py --glb /tmp/cpu_bench/out_2.glb \\
        --out /tmp/export_bench [--repeats 5]

Writes ``<out>/export_glb.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.geometry import export  # noqa: E402

COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


def read_glb(payload: bytes) -> tuple[dict, bytes]:
    """(JSON document, BIN chunk) of a GLB."""
    json_length = struct.unpack("<I", payload[12:16])[0]
    document = json.loads(payload[20 : 20 + json_length])
    return document, payload[20 + json_length + 8 :]


def _accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    dtype = COMPONENTS[accessor["componentType"]]
    width = WIDTHS[accessor["type"]]
    flat = np.frombuffer(binary, dtype, accessor["count"] * width, start)
    return flat.reshape(accessor["count"], width) if width > 1 else flat


def images(document: dict, binary: bytes) -> list[np.ndarray]:
    """Every image of the GLB, decoded, in document order."""
    decoded = []
    for image in document.get("images", []):
        view = document["bufferViews"][image["bufferView"]]
        start = view.get("byteOffset", 0)
        png = binary[start : start + view["byteLength"]]
        decoded.append(np.asarray(Image.open(io.BytesIO(png))))
    return decoded


def export_mesh(payload: bytes) -> export.ExportMesh:
    """The GLB's first mesh and material maps as an ExportMesh (no LODs)."""
    document, binary = read_glb(payload)
    primitive = document["meshes"][0]["primitives"][0]
    attributes = {key: _accessor(document, binary, i) for key, i in primitive["attributes"].items()}
    faces = _accessor(document, binary, primitive["indices"]).reshape(-1, 3)
    maps = images(document, binary)
    material = document["materials"][0]
    pbr = material["pbrMetallicRoughness"]

    def texture(slot: dict | None) -> np.ndarray | None:
        return None if slot is None else maps[document["textures"][slot["index"]]["source"]]

    return export.ExportMesh(
        vertices=attributes["POSITION"].copy(), faces=faces.copy(),
        normals=attributes["NORMAL"].copy(), uvs=attributes.get("TEXCOORD_0"),
        tangents=attributes.get("TANGENT"), base_color=texture(pbr.get("baseColorTexture")),
        normal_map=texture(material.get("normalTexture")),
        metallic_roughness=texture(pbr.get("metallicRoughnessTexture")),
        alpha_blend=material.get("alphaMode") == "BLEND",
    )  # fmt: skip


def _image_bytes(document: dict) -> list[int]:
    """The PNG size of each image of a GLB document."""
    views = document["bufferViews"]
    return [views[image["bufferView"]]["byteLength"] for image in document.get("images", [])]


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glb", type=Path, required=True, help="a GLB the pipeline wrote")
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    source = args.glb.read_bytes()
    mesh = export_mesh(source)
    maps = [m for m in (mesh.base_color, mesh.metallic_roughness, mesh.normal_map) if m is not None]
    export.export(mesh, "glb")  # warm-up: imports, thread pool, page faults
    walls, cpus, payload = [], [], b""
    for _ in range(args.repeats):
        cpu, started = time.process_time(), time.perf_counter()
        payload = export.export(mesh, "glb")
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    document, binary = read_glb(payload)
    written = images(document, binary)
    same = len(written) == len(maps) and all(
        a.shape == b.shape and bool((a == b).all()) for a, b in zip(written, maps, strict=False)
    )
    image_bytes = _image_bytes(document)
    report = {
        "benchmark": "export_glb",
        "conditions": "export.export(mesh, 'glb') in one process, one warm-up, then median/min/"
        "max of the repeats; CPU time is the process's (all threads)",
        "machine": {
            "cpus": os.cpu_count(),
            "allowed_cpus": len(os.sched_getaffinity(0)),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "input": {
            "file": str(args.glb),
            "faces": len(mesh.faces),
            "vertices": len(mesh.vertices),
            "maps": [list(m.shape) for m in maps],
        },
        "repeats": args.repeats,
        "wall_s": _summary(walls),
        "cpu_s": _summary(cpus),
        "glb_bytes": len(payload),
        "image_bytes": image_bytes,
        "input_image_bytes": _image_bytes(read_glb(source)[0]),
        "same_pixels": same,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "export_glb.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"export: wall {statistics.median(walls):.4f} s ({min(walls):.4f}-{max(walls):.4f}), "
          f"CPU {statistics.median(cpus):.4f} s, {len(payload)} bytes, images {image_bytes}, "
          f"same pixels {same}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
