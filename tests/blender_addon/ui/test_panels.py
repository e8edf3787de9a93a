"""ui/: every panel's draw code runs against the real add-on state in each situation.

Background Blender draws no panels, so draw methods run against a RecordingLayout that checks
each property and operator name against Blender's RNA (see recording_layout.py).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import bpy
import pytest

from shared_protocol.errors import DEFAULT_HINTS, ErrorCode
from shared_protocol.framing import PROTOCOL_VERSION
from shared_protocol.messages import GENERATE_TASKS, ModelInfo, Progress
from tests.blender_addon.ui.recording_layout import RecordingLayout


def draw(panel_class) -> RecordingLayout:
    layout = RecordingLayout()
    panel_class.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def draw_all(addon) -> RecordingLayout:
    layout = RecordingLayout()
    for cls in addon.ui.CLASSES:
        if issubclass(cls, bpy.types.Panel):
            cls.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def test_disconnected_panel_offers_retry_and_local_start(fresh) -> None:
    layout = draw_all(fresh)
    assert fresh.runtime.STATE.session is None
    assert "Not connected" in layout.texts("label")
    assert layout.find("operator", name="dreamcad.connect")
    assert layout.find("operator", name="dreamcad.start_local_backend")
    assert "Connect to list the backend's models" in layout.texts("label")
    (generate,) = layout.find("operator", name="dreamcad.generate")
    assert not generate.enabled


def test_connected_panel_shows_backend_models_and_schema_parameters(connected) -> None:
    layout = draw_all(connected)
    hello = connected.runtime.STATE.session.hello
    assert f"Backend {hello.backend_version} · protocol {hello.protocol_version}" in \
        layout.texts("label")
    assert any("GPU" in t or "GB free" in t for t in layout.texts("label"))
    buttons = layout.find("operator", name="dreamcad.select_model")
    # Every model that makes new assets; mesh-optimize works on the artist's meshes instead.
    listed = [b.properties["model_id"] for b in buttons]
    assert listed == [m.id for m in hello.models if set(m.tasks) & set(GENERATE_TASKS)]
    assert "mesh-optimize" not in listed and "mesh-optimize" in {m.id for m in hello.models}
    (select,) = [b for b in buttons if b.properties["model_id"] == "procedural"]
    assert select.text == connected.live_state.model_info("procedural").name and select.enabled
    assert any(t.startswith("Licence: ") for t in layout.texts("label"))
    model = connected.live_state.model_info("procedural")
    drawn = [c.text for c in layout.calls if c.kind == "prop" and c.name.endswith("_value")]
    assert drawn == [p.label or p.name for p in model.parameters]  # one widget per schema entry
    (generate,) = layout.find("operator", name="dreamcad.generate")
    assert generate.enabled


def test_unavailable_model_is_disabled_with_its_reason(connected) -> None:
    session = connected.runtime.STATE.session
    missing = ModelInfo(id="big", name="Big Model", tasks=("image",), parameters=(),
                        vram_mb=24_000, license="custom", weights_present=False, available=False,
                        unavailable_reason="weights missing: run `dreamcad-backend download big`")
    session.hello = dataclasses.replace(session.hello, models=(*session.hello.models, missing))
    layout = draw(connected.ui.panels.DREAMCAD_PT_model)
    (row,) = layout.find("operator", text="Big Model")
    assert not row.enabled
    assert "run `dreamcad-backend download big`" in " ".join(layout.texts("label"))
    with pytest.raises(RuntimeError, match="Big Model cannot run here"):
        bpy.ops.dreamcad.select_model(model_id="big")
    assert connected.runtime.STATE.report.hint == DEFAULT_HINTS[ErrorCode.WEIGHTS_MISSING]
    too_big = dataclasses.replace(missing, id="huge", weights_present=True,
                                  unavailable_reason="needs 24000 MB of VRAM")
    session.hello = dataclasses.replace(session.hello, models=(*session.hello.models, too_big))
    with pytest.raises(RuntimeError, match="needs 24000 MB of VRAM"):
        bpy.ops.dreamcad.select_model(model_id="huge")
    report = connected.runtime.STATE.report
    assert report.message.endswith("(model)")
    assert report.hint == DEFAULT_HINTS[ErrorCode.MODEL_UNAVAILABLE]


def test_progress_bar_and_queue_rows(connected) -> None:
    records = connected.client.records
    session = connected.runtime.STATE.session
    session.jobs["job1"] = records.JobRecord(
        "job1", "red torus", "procedural", "red torus", "text", 7, state="running",
        progress=Progress(stage="field", step=2, total=4, fraction=0.5, eta_s=3.0),
        submitted_here=True)
    session.jobs["job2"] = records.JobRecord("job2", "blue cube", "procedural", "blue cube",
                                             "text", 8, state="succeeded")
    connected.runtime.sync_rows()
    layout = draw(connected.ui.panels.DREAMCAD_PT_generate)
    (bar,) = layout.find("progress")
    assert bar.text == "field · step 2/4 · ETA 3 s" and bar.properties["factor"] == 0.5
    (cancel,) = layout.find("operator", name="dreamcad.cancel")
    assert cancel.properties == {"job_id": "job1"}

    live = bpy.context.window_manager.dreamcad_live
    assert [r.job_id for r in live.jobs] == ["job2", "job1"]  # newest first
    live.active_job_index = 0
    layout = draw(connected.ui.job_list.DREAMCAD_PT_queue)
    assert layout.find("template_list", name="DREAMCAD_UL_jobs")
    (reimport,) = layout.find("operator", name="dreamcad.reimport")
    assert reimport.properties == {"job_id": "job2"}
    row_layout = RecordingLayout()
    for row in live.jobs:
        connected.ui.job_list.DREAMCAD_UL_jobs.draw_item(
            None, bpy.context, row_layout, live, row, 0, live, "active_job_index")
    assert "50 %" in row_layout.texts("label")


def test_version_mismatch_is_drawn_with_what_to_upgrade(fresh, peer_factory) -> None:
    newer = PROTOCOL_VERSION + 1
    peer = peer_factory(lambda frames: [f"dreamcad/{newer}".encode(), frames[1]])
    fresh.preferences.preferences().backend_address = peer.address
    with pytest.raises(RuntimeError, match="upgrade the Dream CAD add-on"):
        bpy.ops.dreamcad.connect()  # the operator's ERROR report, as a script sees it
    layout = draw(fresh.ui.panels.DREAMCAD_PT_main)
    text = " ".join(layout.texts("label"))
    assert f"protocol {newer}" in text and "upgrade the Dream CAD add-on" in text
    assert layout.find("operator", name="dreamcad.connect")


def test_preferences_draw(fresh) -> None:
    prefs = fresh.preferences.preferences()
    prefs.use_curve = True
    layout = RecordingLayout()
    fresh.ui.preferences_view.draw_preferences(prefs, layout, bpy.context)
    names = {c.name for c in layout.calls if c.kind == "prop"}
    assert {"backend_address", "curve_client_secret", "backend_python", "output_directory"} \
        <= names


def test_view_slots_only_for_models_that_take_several_views(connected) -> None:
    settings = bpy.context.scene.dreamcad
    views = {"view_left_path", "view_back_path", "view_right_path"}

    def drawn_props() -> dict[str, str]:
        layout = draw(connected.ui.panels.DREAMCAD_PT_input)
        return {c.name: c.text for c in layout.calls if c.kind == "prop"}

    settings.task = "multi_image"  # left over from another model: procedural takes text only
    assert not views & set(drawn_props())
    session = connected.runtime.STATE.session
    multi = ModelInfo(id="mv", name="Multi View", tasks=("image", "multi_image"), parameters=(),
                      vram_mb=8_000, license="MIT")
    session.hello = dataclasses.replace(session.hello, models=(*session.hello.models, multi))
    settings.model_id = "mv"
    props = drawn_props()
    assert views <= set(props) and props["image_path"] == "Front"
    settings.task = "image"
    props = drawn_props()
    assert not views & set(props) and props["image_path"] == "Image"
