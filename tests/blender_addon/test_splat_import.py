"""splat_import.py and splat_ply.py: a 3DGS .ply -> a coloured point cloud on its mesh (real bpy).

The mesh is a real GLB (Blender's own glTF exporter, a box away from the origin) imported by the
add-on's importer, so its frame change and its shift to the bottom centre are the real ones.
The splat file holds the box's corners in a frame of its own (turned half about X and moved, as
TRELLIS's ply is); ``to_asset`` says how, and the cloud must land on the box's corners."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from tests.blender_addon.test_importer import BOX_OFFSET, BOX_SIZE, provenance, world_points

C0 = 0.28209479177387814
FILE_TO_ASSET = np.array([[1.0, 0, 0, 0.1], [0, -1, 0, 0.2], [0, 0, -1, 0.3], [0, 0, 0, 1]])
PROPERTIES = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
              *(f"f_rest_{i}" for i in range(9)), "opacity", "scale_0", "scale_1", "scale_2",
              "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip


def splat_ply(positions: np.ndarray, f_dc: np.ndarray, opacity: np.ndarray) -> bytes:
    """A 3DGS ply (with SH degree 1 rest coefficients, which the reader must skip)."""
    rows = np.zeros((len(positions), len(PROPERTIES)), "<f4")
    rows[:, 0:3], rows[:, 6:9] = positions, f_dc
    rows[:, 9:18] = 7.0  # f_rest: must not leak into the colour
    rows[:, 18], rows[:, 19:22], rows[:, 22] = opacity, np.log(0.01), 1.0
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(rows)}",
              *(f"property float {name}" for name in PROPERTIES), "end_header"]  # fmt: skip
    return ("\n".join(header) + "\n").encode() + rows.tobytes()


@pytest.fixture
def glb(fresh, tmp_path: Path) -> Path:
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=BOX_OFFSET)
    bpy.context.active_object.scale = BOX_SIZE
    path = tmp_path / "box.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    return path


def box_corners_in_gltf() -> np.ndarray:
    """(8, 3) the box's corners in the asset's (glTF, +Y up) frame: Blender (x, y, z) ->
    glTF (x, z, -y)."""
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    blender = np.array(BOX_OFFSET) + signs * np.array(BOX_SIZE) / 2
    return np.stack([blender[:, 0], blender[:, 2], -blender[:, 1]], axis=1)


def test_the_cloud_lands_on_its_mesh_with_colour_and_opacity(fresh, glb, tmp_path) -> None:
    importer, splat_import = fresh.importer, fresh.splat_import
    mesh = importer.import_glb(glb, "Box", importer.Placement(location=(1.0, 2.0, 3.0),
                                                              target_size=4.0),
                               provenance(importer))  # fmt: skip
    corners = box_corners_in_gltf()
    in_file = np.c_[corners, np.ones(8)] @ np.linalg.inv(FILE_TO_ASSET).T
    f_dc = np.linspace(-3.0, 3.0, 24).reshape(8, 3)  # some clip at 0 and 1
    opacity = np.linspace(-4.0, 4.0, 8)
    path = tmp_path / "box.gaussians.ply"
    path.write_bytes(splat_ply(in_file[:, :3], f_dc, opacity))

    cloud = splat_import.import_splats(path, mesh.name, tuple(FILE_TO_ASSET.ravel()), mesh)
    bpy.context.view_layer.update()
    assert cloud.name == "Box_gaussians" and cloud.parent == mesh
    assert set(cloud.users_collection) == set(mesh.users_collection)
    assert len(cloud.data.vertices) == 8 and len(cloud.data.polygons) == 0
    on_mesh = np.unique(world_points(mesh).round(4), axis=0)  # the glTF box splits its corners
    on_cloud = world_points(cloud)
    assert len(on_mesh) == 8
    for point in on_cloud:  # each Gaussian sits on its own corner of the placed box
        assert np.linalg.norm(on_mesh - point, axis=1).min() < 1e-3
    assert len(np.unique(on_cloud.round(3), axis=0)) == 8

    colours = np.empty(8 * 4, np.float32)
    cloud.data.color_attributes["Col"].data.foreach_get("color_srgb", colours)
    assert np.allclose(colours.reshape(8, 4)[:, :3], np.clip(0.5 + C0 * f_dc, 0, 1), atol=1e-3)
    alpha = np.empty(8, np.float32)
    cloud.data.attributes["opacity"].data.foreach_get("value", alpha)
    assert np.allclose(alpha, 1 / (1 + np.exp(-opacity)), atol=1e-5)
    assert cloud["dreamcad_gaussians_of"] == "job123"

    # Drawn as points: the evaluated object is a point cloud with the colour and a radius each.
    evaluated = cloud.evaluated_get(bpy.context.evaluated_depsgraph_get()).evaluated_geometry()
    points = evaluated.pointcloud
    assert points is not None and len(points.points) == 8 and "Col" in points.attributes
    radius = np.empty(8, np.float32)
    points.attributes["radius"].data.foreach_get("value", radius)
    assert np.allclose(radius, 0.01, rtol=1e-3)  # exp(log 0.01); the parent scales the rest
    assert cloud.data.materials[0].name == "Dream CAD Gaussians"


def test_a_file_that_is_not_a_splat_file_is_refused(fresh, tmp_path) -> None:
    path = tmp_path / "mesh.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    with pytest.raises(ValueError, match="binary little-endian"):
        fresh.splat_import.import_splats(path, "Mesh")
    path.write_bytes(splat_ply(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2))
                     .replace(b"f_dc_0", b"red_00"))  # fmt: skip
    with pytest.raises(ValueError, match="f_dc_0"):
        fresh.splat_import.import_splats(path, "Mesh")
