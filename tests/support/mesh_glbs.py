"""GLBs an artist might send, built in the tests: a textured outer shell with a hidden inner
one (known face counts), and broken ones. trimesh writes them, as any exporter would."""

from __future__ import annotations

import io

import numpy as np

from tests.support import shell_meshes

# Two colours side by side in the texture: the bake must carry both over.
LEFT_COLOUR = (220, 40, 30)
RIGHT_COLOUR = (30, 60, 210)


def textured_shells(rows: int = 32) -> tuple[bytes, int, int]:
    """(GLB, outer faces, hidden inner faces): a textured sphere around a smaller one."""
    import trimesh
    from PIL import Image

    outer_v, outer_f = shell_meshes.sphere(1.0, rows)
    inner_v, inner_f = shell_meshes.sphere(0.5, rows // 2)
    texture = np.zeros((64, 64, 3), np.uint8)
    texture[:, :32] = LEFT_COLOUR
    texture[:, 32:] = RIGHT_COLOUR
    parts = []
    for vertices, faces in ((outer_v, outer_f), (inner_v, inner_f)):
        # u from x: the -x half is LEFT_COLOUR, the +x half RIGHT_COLOUR (v is irrelevant).
        uv = np.stack([(vertices[:, 0] / 2.0 + 0.5) * 0.9 + 0.05, np.full(len(vertices), 0.5)], 1)
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(texture))
        mesh = trimesh.Trimesh(vertices, faces, process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        parts.append(mesh)
    data = trimesh.Scene(parts).export(file_type="glb")
    return data, len(outer_f), len(inner_f)


def textured_ball(rows: int = 24) -> bytes:
    """One textured sphere (one material): the UV layout an artist made, to keep."""
    import trimesh
    from PIL import Image

    vertices, faces = shell_meshes.sphere(1.0, rows)
    # A layout of its own: u around y, v from bottom to top, inside 0.1 .. 0.9.
    u = (np.arctan2(vertices[:, 2], vertices[:, 0]) / (2 * np.pi) + 0.5) * 0.8 + 0.1
    v = (vertices[:, 1] / 2.0 + 0.5) * 0.8 + 0.1
    texture = np.full((32, 32, 3), 128, np.uint8)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(texture))
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.stack([u, v], 1), material=material)
    return mesh.export(file_type="glb")


def glb_of(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    import trimesh

    return trimesh.Trimesh(vertices, faces, process=False).export(file_type="glb")


def empty_glb() -> bytes:
    """A valid GLB whose scene draws no triangles (one point primitive)."""
    import trimesh

    cloud = trimesh.PointCloud(np.zeros((3, 3)))
    buffer = io.BytesIO(trimesh.Scene([cloud]).export(file_type="glb"))
    return buffer.getvalue()
