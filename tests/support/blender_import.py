"""Import a GLB in real Blender (bpy 5.0.1 from .venv/blender) and describe what arrived.

The backend environment has no bpy, so this runs a small script with ``.venv/blender/bin/python``
as a subprocess and reads back JSON: face count, UV layers, how the Principled BSDF's Base
Color and Normal inputs are fed, object names, and for a mesh whose extras say its faces are
quads split in pairs, what joining those pairs back gives. Skips the calling test (with the
reason) if that environment is missing.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLENDER_PYTHON = ROOT / ".venv" / "blender" / "bin" / "python"

_SCRIPT = r"""
import json, sys
import bpy

bpy.ops.wm.read_factory_settings(use_empty=True)
result = bpy.ops.import_scene.gltf(filepath=sys.argv[1])
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
info = {"import": list(result), "objects": len(meshes), "faces": 0, "uv_layers": [],
        "materials": []}

def upstream(socket):
    # The node feeding a socket, and for a Normal Map node the image node behind it.
    if not socket.is_linked:
        return None
    node = socket.links[0].from_node
    entry = {"type": node.type}
    if node.type == "TEX_IMAGE" and node.image is not None:
        entry["image_size"] = list(node.image.size)
    if node.type == "NORMAL_MAP":
        entry["space"] = node.space
        entry["color"] = upstream(node.inputs["Color"])
    return entry

for obj in meshes:
    mesh = obj.data
    info["faces"] += len(mesh.polygons)
    info["uv_layers"] += [layer.name for layer in mesh.uv_layers]
    for material in mesh.materials:
        bsdf = next((n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
        entry = {"name": material.name, "principled": bsdf is not None}
        if bsdf is not None:
            entry["base_color"] = upstream(bsdf.inputs["Base Color"])
            entry["normal"] = upstream(bsdf.inputs["Normal"])
            entry["roughness"] = upstream(bsdf.inputs["Roughness"])
            entry["metallic"] = upstream(bsdf.inputs["Metallic"])
        info["materials"].append(entry)
# Per object: its name, and where the mesh says its first faces are quads split in pairs
# (extras.quad_pairs), those pairs joined back along their shared edge as an importer would.
import bmesh
info["names"] = sorted(o.name for o in meshes)
for obj in meshes:
    pairs = obj.data.get("quad_pairs")
    if not pairs:
        continue
    mesh = bmesh.new()
    mesh.from_mesh(obj.data)
    mesh.faces.ensure_lookup_table()
    shared = []
    for i in range(int(pairs)):
        first, second = mesh.faces[2 * i], mesh.faces[2 * i + 1]
        edges = set(first.edges) & set(second.edges)
        shared += list(edges)[:1] if len(edges) == 1 else []
    bmesh.ops.dissolve_edges(mesh, edges=shared, use_verts=False)
    info.setdefault("joined", {})[obj.name] = {
        "pairs": int(pairs), "shared_edges": len(shared),
        "quads": sum(len(f.verts) == 4 for f in mesh.faces), "polygons": len(mesh.faces),
    }
    mesh.free()
print("DREAMCAD_JSON" + json.dumps(info))
"""


def import_glb(path: Path) -> dict:
    """What Blender made of the GLB at ``path`` (see the module docstring)."""
    if not BLENDER_PYTHON.is_file():
        pytest.skip(f"no Blender environment at {BLENDER_PYTHON}: run scripts/setup_env.sh")
    done = subprocess.run(
        [str(BLENDER_PYTHON), "-c", _SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("DREAMCAD_JSON")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"Blender import failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1][len("DREAMCAD_JSON") :])


def assert_baked_material(info: dict, faces: int) -> None:
    """The import has ``faces`` faces, a UV map, and a Principled BSDF fed by baked images."""
    assert info["import"] == ["FINISHED"], info
    assert info["faces"] == faces, info
    assert info["uv_layers"], info
    material = info["materials"][0]
    assert material["principled"], info
    assert material["base_color"]["type"] == "TEX_IMAGE", info
    assert material["normal"]["type"] == "NORMAL_MAP", info
    assert material["normal"]["space"] == "TANGENT", info
    assert material["normal"]["color"]["type"] == "TEX_IMAGE", info
