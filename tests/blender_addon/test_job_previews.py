"""job_previews.py: a finished job's PNG preview from a real backend, loaded, drawn and freed.

Background Blender makes no icons (its BKE_icon_preview_ensure returns 0 when G.background), so
a preview's ``icon_id`` is 0 here by design; the tests check the loaded preview itself (its
pixels: the asset on a transparent background), that the queue row carries whatever icon id
Blender gives, and the draw code's icon path with a row's icon id set as the timer would.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import bpy
import numpy as np

from tests.blender_addon.conftest import ADDON_MODULE, pump, text_job
from tests.blender_addon.operators.test_generate import dreamcad_objects
from tests.blender_addon.ui.recording_layout import RecordingLayout


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def finished_job(addon, prompt: str) -> str:
    text_job(addon, prompt)
    assert bpy.ops.dreamcad.generate() == {"FINISHED"}  # background mode: waits for the import
    (obj,) = dreamcad_objects()
    return obj["dreamcad_job_id"]


def test_finished_job_has_its_preview_in_the_queue_until_deleted(connected) -> None:
    runtime, previews = connected.runtime, connected.job_previews
    job_id = finished_job(connected, "orange cone")
    preview = previews.preview(job_id)
    assert preview is not None, "the result's preview was not loaded"
    (png_path,) = [p for p in runtime.STATE.result_files[job_id].parent.glob("*_preview.png")
                   if job_id[:8] in p.name]
    width, height = preview.image_size
    assert (width, height) == png_size(png_path)  # the backend's thumbnail, as sent
    pixels = np.array(preview.image_pixels_float).reshape(height, width, 4)  # RGBA
    opaque = pixels[..., 3] > 0.5
    assert opaque.any() and not opaque.all()  # the asset, on a transparent background

    runtime.sync_rows()
    live = bpy.context.window_manager.dreamcad_live
    (row,) = [r for r in live.jobs if r.job_id == job_id]
    assert row.preview_icon == preview.icon_id == previews.icon_id(job_id)

    assert bpy.ops.dreamcad.delete(job_id=job_id) == {"FINISHED"}
    pump(connected, lambda: job_id not in runtime.STATE.session.jobs)
    assert previews.preview(job_id) is None and job_id not in runtime.STATE.result_files
    assert png_path.is_file()  # the user's output folder is left alone


def test_queue_draws_the_preview_icon_when_blender_has_one(connected) -> None:
    job_id = finished_job(connected, "teal ring")
    connected.runtime.sync_rows()
    live = bpy.context.window_manager.dreamcad_live
    index, row = next((i, r) for i, r in enumerate(live.jobs) if r.job_id == job_id)
    row.preview_icon = 4321  # what sync_rows copies from a preview in a UI session
    live.active_job_index = index
    job_list = connected.ui.job_list
    layout = RecordingLayout()
    job_list.DREAMCAD_UL_jobs.draw_item(None, bpy.context, layout, live, row, 0, live,
                                        "active_job_index")
    (label,) = layout.find("label", text=row.label)
    assert label.properties == {"icon_value": 4321}
    layout = RecordingLayout()
    job_list.DREAMCAD_PT_queue.draw(SimpleNamespace(layout=layout), bpy.context)
    (icon,) = layout.find("template_icon")
    assert icon.properties == {"icon_value": 4321}


def test_unregister_frees_every_preview(connected) -> None:
    job_id = finished_job(connected, "grey wedge")
    collection = connected.runtime.STATE.previews
    assert job_id in collection
    bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    try:
        assert len(collection) == 0  # bpy.utils.previews.remove cleared it
    finally:
        bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
