"""How long the add-on takes to send a scene mesh: export to GLB in memory (mesh_export.py).

Run with Blender's Python (real bpy): ``.venv/blender/bin/python benchmarks/mesh_export.py``.
A UV sphere subdivided to about N triangles, with an image material and a colour attribute
(tests/blender_addon/mesh_scenes.py), is exported the way "Make Game-Ready" does; prints a
table (triangles, seconds, MiB) and writes JSON where ``--out`` says.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

from blender_addon import mesh_export  # noqa: E402
from tests.blender_addon.mesh_scenes import image_material  # noqa: E402


def sphere(triangles: int) -> bpy.types.Object:
    """A UV sphere of about ``triangles`` triangles (rings = segments / 2), image-textured."""
    segments = max(8, int((triangles / 2) ** 0.5 * 1.414))
    bpy.ops.mesh.primitive_uv_sphere_add(segments=segments, ring_count=segments // 2,
                                         location=(1.0, 2.0, 3.0))
    obj = bpy.context.active_object
    obj.data.materials.append(image_material("bench"))
    obj.data.color_attributes.new("Col", "BYTE_COLOR", "CORNER")
    return obj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--triangles", type=int, nargs="+", default=[50_000, 200_000, 800_000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for target in args.triangles:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = sphere(target)
        start = time.perf_counter()
        exported = mesh_export.export_object(obj, bpy.context.evaluated_depsgraph_get())
        seconds = time.perf_counter() - start
        rows.append({"triangles": exported.faces, "seconds": round(seconds, 3),
                     "mib": round(len(exported.glb) / 2**20, 2)})
    print(f"{'triangles':>10} {'seconds':>8} {'MiB':>7}")
    for row in rows:
        print(f"{row['triangles']:>10} {row['seconds']:>8.2f} {row['mib']:>7.1f}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
