"""Texture Selected end to end: a bpy mesh painted by a real backend with tiny painter weights.

The backend is a real ``serve`` process given tiny random weights (tests/support/tiny_painters:
Hunyuan3D-2mini shape + paint, the image-bridge's SDXL-Turbo, TRELLIS.2-4B), written by the
backend's own Python since Blender's has no torch. A box built in bpy (moved, turned, scaled,
with a modifier and an image material) goes out through the "Texture Selected" operator and
comes back on the same object with a new painted material, its geometry unchanged.
"""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import bpy
import numpy as np
import pytest

from tests.blender_addon.conftest import pump, set_parameters
from tests.blender_addon.mesh_scenes import evaluated_world_points, textured_box, world_points
from tests.blender_addon.ui.recording_layout import RecordingLayout
from tests.support.backend_process import REPO, BackendProcess, backend_python

pytestmark = pytest.mark.slow  # about 45 s on 2 idle cores: three tiny paint jobs
HUNYUAN, BRIDGE, TRELLIS2 = "hunyuan3d-2mini", "image-bridge", "trellis2-4b"
# The tiny paint model in seconds on a CPU (its defaults, 30 steps at 512 px, take minutes).
TINY_PAINT = {"paint_steps": 1, "delight_steps": 1, "paint_view_size": 16}
SUBJECT_PX = 48


@pytest.fixture(scope="module")
def painter_backend(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tiny-painters")
    written = subprocess.run(
        [backend_python(), "-m", "tests.support.tiny_painters", str(root / "weights")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert written.returncode == 0, written.stderr
    weights = json.loads(written.stdout.strip().splitlines()[-1])
    with BackendProcess(root / "data", *weights) as process:
        yield process


@pytest.fixture
def painters(fresh, painter_backend):
    """Connected to the painters' backend, Hunyuan3D-2mini chosen with its tiny paint settings."""
    fresh.preferences.preferences().backend_address = painter_backend.address
    bpy.ops.dreamcad.connect()
    assert fresh.runtime.STATE.session.connected
    assert bpy.ops.dreamcad.select_model(model_id=HUNYUAN) == {"FINISHED"}
    settings = bpy.context.scene.dreamcad
    set_parameters(settings, TINY_PAINT)
    mesh = settings.mesh
    mesh.result_mode, mesh.texture_size, mesh.keep_uvs = "REPLACE", "256", True
    return fresh


def subject_image() -> bpy.types.Image:
    """An orange disc on a transparent background, as an image in the .blend."""
    image = bpy.data.images.new("Subject", SUBJECT_PX, SUBJECT_PX, alpha=True)
    yy, xx = np.mgrid[:SUBJECT_PX, :SUBJECT_PX]
    inside = (yy - SUBJECT_PX / 2) ** 2 + (xx - SUBJECT_PX / 2) ** 2 < (SUBJECT_PX / 3) ** 2
    pixels = np.zeros((SUBJECT_PX, SUBJECT_PX, 4), np.float32)
    pixels[inside] = (0.9, 0.45, 0.15, 1.0)
    image.pixels.foreach_set(pixels.ravel())
    image.pack()
    return image


def bounds(points: np.ndarray) -> np.ndarray:
    return np.stack([points.min(axis=0), points.max(axis=0)])


def triangles(obj: bpy.types.Object) -> int:
    obj.data.calc_loop_triangles()
    return len(obj.data.loop_triangles)


def base_colour_image(material: bpy.types.Material) -> bpy.types.Image:
    """The image the Principled BSDF's Base Color reads (through any nodes between)."""
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    (link,) = bsdf.inputs["Base Color"].links
    node = link.from_node
    while node.type != "TEX_IMAGE":
        node = next(i for i in node.inputs if i.is_linked).links[0].from_node
    return node.image


def assert_painted_in_place(box: bpy.types.Object, before: np.ndarray, faces: int,
                            old_material: bpy.types.Material) -> bpy.types.Image:
    assert box.name in bpy.data.objects and len(box.modifiers) == 0  # applied once, not twice
    assert triangles(box) == faces
    assert bounds(world_points(box)) == pytest.approx(before, abs=2e-3)
    material = box.active_material
    assert material is not None and material != old_material
    image = base_colour_image(material)
    assert tuple(image.size) == (256, 256)
    pixels = np.empty(256 * 256 * 4, np.float32)
    image.pixels.foreach_get(pixels)
    assert np.ptp(pixels.reshape(-1, 4)[:, :3], axis=0).max() > 0.01  # painted, not a fill
    return image


def test_texture_selected_from_an_image_paints_the_object_in_place(painters) -> None:
    box = textured_box(subdivisions=1)
    before, faces = bounds(evaluated_world_points(box)), 48  # 6 sides x 4 quads x 2
    old_material = box.active_material
    settings = bpy.context.scene.dreamcad
    settings.mesh.texture_input = "IMAGE"
    settings.image_source, settings.image = "BLEND", subject_image()

    assert bpy.ops.dreamcad.texture_selected() == {"FINISHED"}

    assert_painted_in_place(box, before, faces, old_material)
    record = painters.runtime.STATE.session.jobs[box["dreamcad_job_id"]]
    assert (record.model, record.task) == (HUNYUAN, "texture")
    assert box["dreamcad_model"] == HUNYUAN
    recorded = json.loads(box["dreamcad_settings"])
    assert recorded["task"] == "texture" and recorded["mesh"] == box.name
    assert recorded["parameters"]["paint_view_size"] == TINY_PAINT["paint_view_size"]
    assert json.loads(box["dreamcad_inputs"]) == {"image_name": "Subject"}


def test_texture_selected_from_a_prompt_goes_through_the_bridge(painters) -> None:
    box = textured_box(subdivisions=1)
    before, old_material = bounds(evaluated_world_points(box)), box.active_material
    settings = bpy.context.scene.dreamcad
    settings.mesh.texture_input = "PROMPT"
    settings.prompt = "rusty metal crate"

    assert bpy.ops.dreamcad.texture_selected() == {"FINISHED"}

    assert_painted_in_place(box, before, 48, old_material)
    record = painters.runtime.STATE.session.jobs[box["dreamcad_job_id"]]
    assert (record.model, record.task) == (BRIDGE, "texture")
    assert box["dreamcad_prompt"] == "rusty metal crate"
    parameters = json.loads(box["dreamcad_settings"])["parameters"]
    assert parameters["image_model"] == HUNYUAN
    assert json.loads(parameters["image_model_parameters"])["paint_steps"] == 1


def test_the_panel_offers_every_painter_the_backend_has(painters) -> None:
    mesh_panel = painters.ui.mesh_panel
    layout = RecordingLayout()
    mesh_panel.DREAMCAD_PT_your_mesh.draw(SimpleNamespace(layout=layout), bpy.context)
    assert [c.name for c in layout.calls if c.kind == "prop"].count("painter") == 1
    offered = [item[0] for item in painters.mesh_properties.painter_items(
        bpy.context.scene.dreamcad.mesh, bpy.context)]
    assert TRELLIS2 in offered and HUNYUAN in offered and BRIDGE not in offered

    settings = bpy.context.scene.dreamcad
    settings.mesh.painter = TRELLIS2
    models = painters.live_state.models()
    chosen, _ = painters.mesh_requests.texture_model(models, settings.mesh.painter, False)
    assert chosen.id == TRELLIS2


# Last in this file: ed.undo/ed.redo in bpy-as-a-module once crashed a later test
# (see operators/test_mesh_jobs.py).
def test_the_textured_result_is_one_undo_step(painters) -> None:
    box = textured_box(subdivisions=1)
    name, old_material = box.name, box.active_material.name
    settings = bpy.context.scene.dreamcad
    settings.mesh.texture_input = "IMAGE"
    settings.image_source, settings.image = "BLEND", subject_image()
    bpy.ops.ed.undo_push(message="before texturing")
    mesh_jobs = painters.operators.mesh_jobs
    msg_id = mesh_jobs.submit_mesh_job(mesh_jobs.texture_job, bpy.context, box, "REPLACE")
    plan = painters.runtime.STATE.plans[msg_id]
    pump(painters, lambda: plan.done, timeout_s=180)  # the timer's import, as in the UI
    assert plan.error is None, plan.error
    painted = bpy.data.objects[name].active_material.name
    assert painted != old_material

    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert bpy.data.objects[name].active_material.name == old_material
    assert len(bpy.data.objects[name].modifiers) == 1
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert bpy.data.objects[name].active_material.name == painted
    assert "dreamcad_job_id" in bpy.data.objects[name]
