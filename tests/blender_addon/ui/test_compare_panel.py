"""ui/compare_panel.py in real bpy: the model ticks, the Compare button and the table, drawn for
a compare while it runs and after it landed (job records as the session keeps them)."""

from __future__ import annotations

from types import SimpleNamespace

import bpy

from shared_protocol.messages import Manifest, Progress
from tests.blender_addon.ui.recording_layout import RecordingLayout


def draw(addon) -> RecordingLayout:
    layout = RecordingLayout()
    addon.ui.compare_panel.DREAMCAD_PT_compare.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def test_disconnected_says_connect(fresh) -> None:
    assert "Connect to compare the backend's models" in draw(fresh).texts("label")


def test_only_models_that_take_the_input_can_be_ticked(connected) -> None:
    settings = bpy.context.scene.dreamcad
    settings.task = "text"
    layout = draw(connected)
    toggles = {c.properties["model_id"]: c for c in
               layout.find("operator", name="dreamcad.compare_toggle_model")}  # fmt: skip
    assert toggles["procedural"].enabled and not toggles["inflate"].enabled
    assert "takes image input" in layout.texts("label")
    missing = [m for m in connected.live_state.models() if not m.weights_present]
    if missing:  # models with weights to download are listed, greyed, with the reason
        assert not toggles[missing[0].id].enabled
        assert "weights not downloaded" in layout.texts("label")
    (button,) = layout.find("operator", name="dreamcad.compare")
    assert not button.enabled and button.text == "Tick 2 or More Models"

    bpy.ops.dreamcad.compare_toggle_model(model_id="procedural")
    bpy.ops.dreamcad.compare_toggle_model(model_id="inflate")
    (button,) = draw(connected).find("operator", name="dreamcad.compare")
    assert not button.enabled  # inflate is ticked but cannot take text
    settings.task = "image"
    bpy.ops.dreamcad.compare_toggle_model(model_id="procedural")  # untick
    assert settings.compare.models == "inflate"


def test_the_table_while_running_and_after_landing(connected) -> None:
    addon = connected
    compare = addon.client.compare
    JobRecord = addon.client.records.JobRecord  # noqa: N806 (a class)
    session = addon.runtime.STATE.session
    key_a, key_b = compare.CompareKey("c0ffee", 0, "procedural"), compare.CompareKey("c0ffee", 1,
                                                                                   "tall")
    done = JobRecord("job-a", "", "procedural", "a lamp", "text", 5, state="succeeded",
                     request_key=str(key_a))  # fmt: skip
    done.manifest = Manifest(format="glb", faces=1234, vertices=700, bbox_min=(0, 0, 0),
                             bbox_max=(1, 1, 1), seed=5, model="procedural",
                             timings_s={"generate": 1.5, "pipeline.bake": 0.5},
                             peak_vram_mb=2048.0)  # fmt: skip
    running = JobRecord("job-b", "", "tall", "a lamp", "text", 5, state="running",
                        request_key=str(key_b), progress=Progress("field", 1, 4, 0.25))
    session.jobs.update({"job-a": done, "job-b": running})
    assert not draw(addon).find("label", text="“a lamp”")  # not this file's compare

    addon.compare_row.start_row("c0ffee", (0.0, 0.0, 0.0))
    layout = draw(addon)
    assert layout.find("label", text="“a lamp”")
    texts = layout.texts("label")
    for header in ("Model", "State", "Time", "Faces", "VRAM"):
        assert header in texts
    assert "25 %" in texts and "2.0 s" in texts and "1,234" in texts and "2.0 GB" in texts
    assert not layout.find("operator", name="dreamcad.compare_keep")  # nothing landed yet

    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    cube["dreamcad_job_id"] = "job-a"
    addon.compare_row.land(cube, compare.CompareEntry(key_a, done))
    (keep,) = draw(addon).find("operator", name="dreamcad.compare_keep")
    assert keep.properties == {"object_name": cube.name}
    (label,) = addon.compare_row.labels_of(cube)
    assert label.data.body == "procedural\n2.0 s · 1,234 faces · 2.0 GB"
    assert cube["dreamcad_compare_peak_vram_mb"] == 2048.0
