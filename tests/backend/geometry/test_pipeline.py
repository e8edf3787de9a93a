"""The whole pipeline: RawAsset in, checked asset out (validator, real Blender), options, cancel."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from backend.cancellation import Cancelled, CancelToken
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.analytic_meshes import analytic_color
from tests.support.blender_import import assert_baked_material, import_glb
from tests.support.gltf_validator import error_messages, validate


@pytest.fixture(scope="module")
def colored_blob(blob_mesh, blob_colors) -> RawAsset:
    return RawAsset(blob_mesh[0], blob_mesh[1], vertex_colors=blob_colors)


def test_vertex_colour_blob_to_checked_glb(colored_blob, tmp_path):
    stages = []
    options = PipelineOptions(target_faces=4000, texture_size=512)
    result = run_pipeline(colored_blob, options, lambda *args: stages.append(args))
    assert [s[0] for s in stages] == ["clean", "decimate", "uv", "bake", "export", "preview"]
    assert abs(result.faces - 4000) <= 0.02 * 4000
    assert result.quality["watertight"] and result.quality["pieces"] == 1
    assert result.quality["flipped_faces"] == 0
    assert result.quality["mean_distance_pct"] < 0.05
    assert all(isinstance(float(v), float) for v in result.quality.values())  # manifest-ready
    assert result.bbox_min[1] == pytest.approx(0.0, abs=1e-6)  # origin at bottom centre
    assert result.bbox_min[0] == pytest.approx(-result.bbox_max[0], abs=1e-5)
    path = tmp_path / "blob.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    assert_baked_material(import_glb(path), result.faces)
    preview = Image.open(io.BytesIO(result.preview))
    assert preview.size == (256, 256)


def test_color_field_is_baked_as_a_texture(sphere_mesh, tmp_path):
    vertices, faces = sphere_mesh
    raw = RawAsset(vertices, faces, color_field=analytic_color, roughness=0.4, metallic=0.1)
    result = run_pipeline(raw, PipelineOptions(target_faces=2000, texture_size=256))
    path = tmp_path / "sphere.glb"
    path.write_bytes(result.asset)
    assert validate(path)["issues"]["numErrors"] == 0


def test_height_scales_to_metres(colored_blob):
    options = PipelineOptions(target_faces=1000, texture_size=256, height_m=1.8)
    result = run_pipeline(colored_blob, options)
    assert result.bbox_max[1] - result.bbox_min[1] == pytest.approx(1.8, rel=1e-4)


def test_cancel_stops_between_stages(colored_blob):
    token = CancelToken()

    def progress(stage, step, total, message):
        if stage == "uv":
            token.cancel()

    with pytest.raises(Cancelled):
        run_pipeline(colored_blob, PipelineOptions(target_faces=1000), progress, token)


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (PipelineOptions(target_faces=1), ErrorCode.OUT_OF_RANGE),
        (PipelineOptions(texture_size=300), ErrorCode.OUT_OF_RANGE),
        (PipelineOptions(output_format="fbx"), ErrorCode.INVALID_FIELD),
        (PipelineOptions(height_m=0.0), ErrorCode.OUT_OF_RANGE),
        (PipelineOptions(device="warp-drive"), ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_options_are_protocol_errors(colored_blob, options, code):
    with pytest.raises(ProtocolError) as caught:
        run_pipeline(colored_blob, options)
    assert caught.value.code == code


def test_empty_mesh_is_a_geometry_error():
    raw = RawAsset(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ProtocolError) as caught:
        run_pipeline(raw, PipelineOptions())
    assert caught.value.code == ErrorCode.GEOMETRY_FAILED


def test_keep_uvs_keeps_the_incoming_mapping(sphere_mesh, tmp_path):
    vertices, faces = sphere_mesh
    uvs = np.column_stack([(vertices[:, 0] + 0.6) / 1.2, (0.6 - vertices[:, 1]) / 1.2])
    texture = np.zeros((32, 32, 3), dtype=np.uint8)
    texture[..., 1] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]
    raw = RawAsset(vertices, faces, uvs=uvs, texture=texture)
    options = PipelineOptions(target_faces=1500, texture_size=256, keep_uvs=True)
    result = run_pipeline(raw, options)
    assert abs(result.faces - 1500) <= 30
    # A planar mapping seen from the back is mirrored: kept, and reported.
    assert result.quality["flipped_faces"] > 0
    path = tmp_path / "kept.glb"
    path.write_bytes(result.asset)
    assert validate(path)["issues"]["numErrors"] == 0
    import trimesh

    mesh = next(iter(trimesh.load(path, process=False).geometry.values()))
    placed = np.asarray(mesh.vertices)
    kept_uv = np.asarray(mesh.visual.uv)  # trimesh: v up
    # Endpoint collapses keep original vertices: u is still exactly affine in x (slope 1/1.2).
    slope, offset = np.polyfit(placed[:, 0], kept_uv[:, 0], 1)
    assert slope == pytest.approx(1 / 1.2, rel=1e-3)
    assert np.abs(kept_uv[:, 0] - (slope * placed[:, 0] + offset)).max() < 1e-4


def test_uncoloured_mesh_bakes_neutral_grey(sphere_mesh):
    raw = RawAsset(*sphere_mesh)  # a shape-only model's output
    result = run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256))
    import trimesh

    mesh = next(iter(trimesh.load(io.BytesIO(result.asset), file_type="glb").geometry.values()))
    base = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    assert np.all(np.abs(base.astype(int) - 204) <= 1)


def test_a_many_handled_surface_keeps_its_topology_and_says_so():
    # A lattice of crossing bars: genus far above what 200 faces can carry.
    from tests.support.analytic_meshes import marching_cubes_mesh

    def lattice(p):
        bars = [np.hypot(np.sin(p[..., i] * 12) * 0.08, np.sin(p[..., j] * 12) * 0.08)
                for i, j in ((0, 1), (1, 2), (0, 2))]  # fmt: skip
        return np.minimum(np.minimum(bars[0], bars[1]), bars[2]) - 0.03

    vertices, faces = marching_cubes_mesh(lattice, 48, extent=0.7)
    result = run_pipeline(RawAsset(vertices, faces), PipelineOptions(target_faces=200))
    assert result.faces > 200 * 1.02
    assert any("handles" in warning for warning in result.warnings)
    assert result.quality["non_manifold_edges"] == 0


def _glb_document(asset: bytes) -> dict:
    """The JSON chunk of a GLB."""
    import json
    import struct

    (length,) = struct.unpack_from("<I", asset, 12)
    return json.loads(asset[20 : 20 + length])


def test_lods_share_one_material_in_one_checked_glb(colored_blob, tmp_path):
    options = PipelineOptions(target_faces=4000, texture_size=256, lods=3, name="blob")
    result = run_pipeline(colored_blob, options)
    path = tmp_path / "blob_lods.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    document = _glb_document(result.asset)
    assert [node["name"] for node in document["nodes"]] == [
        "blob", "blob_LOD0", "blob_LOD1", "blob_LOD2", "blob_LOD3",
    ]  # fmt: skip
    assert document["nodes"][0]["children"] == [1, 2, 3, 4]
    primitives = [mesh["primitives"][0] for mesh in document["meshes"]]
    assert len(document["materials"]) == 1 and {p["material"] for p in primitives} == {0}
    assert len(document["images"]) == 2  # base colour + normal map, once for all levels
    faces = [document["accessors"][p["indices"]]["count"] // 3 for p in primitives]
    assert faces == [level["faces"] for level in result.lods] and faces[0] == result.faces
    for finer, coarser in itertools.pairwise(faces):
        assert coarser == pytest.approx(finer / 2, rel=0.05)
    assert not any("LOD" in warning for warning in result.warnings)
    blender = import_glb(path)  # real Blender reads every level
    assert blender["objects"] == 4 and blender["faces"] == sum(faces)
    assert blender["names"] == [f"blob_LOD{level}" for level in range(4)]


def test_hidden_inner_shell_is_removed_before_decimation_unless_kept():
    from tests.support import shell_meshes as shapes

    vertices, faces = shapes.combine(shapes.sphere(1.0, rows=40), shapes.sphere(0.6, rows=40))
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    options = PipelineOptions(target_faces=1000, texture_size=256, measure_quality=False)
    result = run_pipeline(raw, options)
    assert result.quality["inner_shells_removed"] == 1
    assert result.quality["inner_faces_removed"] == len(faces) // 2
    assert result.quality["pieces"] == 1 and result.faces == pytest.approx(1000, rel=0.02)
    assert "clean.inner_shells" in result.timings_s
    kept = run_pipeline(raw, PipelineOptions(**{**options.__dict__, "keep_inner": True}))
    assert kept.quality["pieces"] == 2 and "inner_faces_removed" not in kept.quality


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (PipelineOptions(lods=6), ErrorCode.OUT_OF_RANGE),
        (PipelineOptions(lods=-1), ErrorCode.OUT_OF_RANGE),
        (PipelineOptions(lods=2, output_format="obj"), ErrorCode.INVALID_FIELD),
        (PipelineOptions(quads=True, keep_uvs=True), ErrorCode.INVALID_FIELD),
    ],
)
def test_bad_game_ready_options_are_protocol_errors(colored_blob, options, code):
    with pytest.raises(ProtocolError) as caught:
        run_pipeline(colored_blob, options)
    assert caught.value.code == code
    assert caught.value.field == ("quads" if options.quads else "lods")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("pynanoinstantmeshes") is None,
    reason="pynanoinstantmeshes missing",
)
def test_quads_come_out_as_recoverable_pairs(colored_blob, tmp_path):
    options = PipelineOptions(target_faces=3000, texture_size=256, quads=True, lods=1)
    result = run_pipeline(colored_blob, options)
    path = tmp_path / "quads.glb"
    path.write_bytes(result.asset)
    assert validate(path)["issues"]["numErrors"] == 0
    document = _glb_document(result.asset)
    pairs = document["meshes"][0]["extras"]["quad_pairs"]
    assert pairs == result.quality["quads"] and 2 * pairs == result.faces
    assert "extras" not in document["meshes"][1]  # LOD1 is triangles
    assert result.quality["flipped_faces"] == 0
    import trimesh

    scene = trimesh.load(path, process=False)
    mesh = scene.geometry[document["meshes"][0]["name"]]
    # Welded positions: faces 2i and 2i+1 share exactly one edge (the quad's diagonal).
    _, welded = np.unique(np.round(mesh.vertices, 6), axis=0, return_inverse=True)
    triangles = welded.reshape(-1)[np.asarray(mesh.faces)].reshape(-1, 2, 3)
    shared = [len(set(a) & set(b)) for a, b in triangles]
    assert shared == [2] * pairs
    joined = import_glb(path)["joined"]  # real Blender joins them back into quads
    assert list(joined.values()) == [
        {"pairs": pairs, "shared_edges": pairs, "quads": pairs, "polygons": pairs}
    ]


def test_the_bake_hint_never_points_at_a_vertex_no_face_uses() -> None:
    """A decimated vertex that no face uses has no UV-mapped copy: the hint must not invent one
    (it read uninitialised memory, and a 4.9 M-face TRELLIS mesh failed with an IndexError).
    A source vertex merged into such a vertex is pointed at the nearest vertex a face uses."""
    from backend.geometry import decimate as decimate_module
    from backend.geometry import uv as uv_module
    from backend.geometry.bake import BakeSource
    from backend.geometry.pipeline import _near_vertex_hint, _owner_hint

    corners = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]], np.float32)
    reduced = decimate_module.DecimateResult(
        vertices=corners, faces=np.array([[0, 1, 2]]), attributes={},
        owner=np.array([0, 1, 2, 3]),
    )  # fmt: skip
    mapped = uv_module.UVResult(
        vertices=corners[:3], faces=np.array([[0, 1, 2]]),
        uvs=np.zeros((3, 2), np.float32), source_vertex=np.array([0, 1, 2]),
        chart=np.zeros(1, np.int64), charts=1, utilization=0.5, flipped_faces=0,
    )  # fmt: skip
    source = BakeSource(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1.2, 0.1, 0]], np.float32),
                        np.array([[0, 1, 2]]))  # fmt: skip
    hint = _owner_hint(source, np.arange(4), reduced, keep_uvs=False)
    assert hint.tolist() == [0, 1, 2, 1]  # source vertex 3 merged into unused 3: nearest is 1
    assert _near_vertex_hint(hint, reduced, mapped).tolist() == [0, 1, 2, 1]
    assert _near_vertex_hint(np.array([0, 1, 2, 3]), reduced, mapped) is None  # never invented


def test_quality_figures_are_timed(colored_blob):
    # The figures (surface distance against the whole source) cost as much as a stage on a
    # big source: the timings must show them, and they hold the distance measurement.
    result = run_pipeline(colored_blob, PipelineOptions(target_faces=2000, texture_size=256))
    assert result.timings_s["quality"] >= result.quality["measure_s"] > 0
    unmeasured = run_pipeline(
        colored_blob, PipelineOptions(target_faces=2000, texture_size=256, measure_quality=False)
    )
    assert "measure_s" not in unmeasured.quality and "quality" in unmeasured.timings_s
