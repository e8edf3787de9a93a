"""Import a GLB in real Blender (bpy 5.0.1 from .venv/blender) and describe what arrived.

The backend environment has no bpy, so this runs a small script with ``.venv/blender/bin/python``
as a subprocess and reads back JSON: face count, UV layers, and how the Principled BSDF's Base
Color and Normal inputs are fed. Skips the calling test (with the reason) if that environment is
missing.
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
