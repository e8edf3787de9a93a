"""ui/shelf_panel.py in real bpy: the model shelf drawn for each state, and Load/Release for real.

The states come into the add-on's shelf (client/shelf.py) the way the backend sends them; the
draw code runs against the RecordingLayout, which checks every operator and property name.
Load and Release go to a real backend and come back through ping's ``model_states``.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import bpy

from shared_protocol.errors import ErrorInfo
from shared_protocol.messages import DownloadProgress, GpuInfo, ModelInfo, ModelState
from tests.blender_addon.conftest import pump
from tests.blender_addon.ui.recording_layout import RecordingLayout

GATED = ModelInfo(id="gated", name="Gated Model", tasks=("image",), parameters=(), vram_mb=9000,
                  license="Stability AI Community: accept on the hub", weights_present=False,
                  license_url="https://huggingface.co/stabilityai/stable-fast-3d",
                  weights_repo="stabilityai/stable-fast-3d", license_gated=True,
                  download_bytes=2 * 2**30, available=False)  # fmt: skip


def draw(addon) -> RecordingLayout:
    layout = RecordingLayout()
    addon.ui.shelf_panel.DREAMCAD_PT_shelf.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout


def with_models(addon, *models: ModelInfo) -> None:
    session = addon.runtime.STATE.session
    session.hello = dataclasses.replace(session.hello, models=models)


def test_disconnected_shelf_says_connect(fresh) -> None:
    assert "Connect to see the backend's models" in draw(fresh).texts("label")


def test_each_state_draws_its_words_and_its_button(connected) -> None:
    shelf = connected.runtime.STATE.session.shelf
    with_models(connected, GATED)
    shelf.from_states((ModelState("gated", "missing"),))
    layout = draw(connected)
    text = " | ".join(layout.texts("label"))
    assert "not downloaded" in text and "2.0 GB" in text
    assert "Licence: Stability AI Community" in text
    assert "Accept the licence first: | https://huggingface.co/stabilityai/stable-fast-3d" in text
    (download,) = layout.find("operator", name="dreamcad.download_model")
    assert download.properties == {"model_id": "gated"}
    first_link = next(i for i, c in enumerate(layout.calls) if "huggingface.co" in c.text)
    assert first_link < layout.calls.index(download)  # the licence is read before the button

    shelf.event(SimpleNamespace())  # anything else is not the shelf's
    progress = DownloadProgress(512 * 2**20, 2 * 2**30, 1, 3, 50 * 2**20, 31.0, "model.ckpt", 0.25)
    shelf.from_states((ModelState("gated", "downloading", download_id="d1", fraction=0.25),))
    shelf.progress["gated"] = progress
    layout = draw(connected)
    (bar,) = layout.find("progress")
    assert bar.properties["factor"] == 0.25 and bar.text == "512/2048 MB, 50.0 MB/s, 31 s left"
    (cancel,) = layout.find("operator", name="dreamcad.cancel_download")
    assert cancel.properties == {"download_id": "d1"}
    assert not layout.find("operator", name="dreamcad.download_model")

    ready = dataclasses.replace(GATED, weights_present=True, available=True)
    with_models(connected, ready)
    shelf.from_states((ModelState("gated", "present"),))
    layout = draw(connected)
    assert "Gated Model ★" in layout.texts("label") and "ready" in layout.texts("label")
    (load,) = layout.find("operator", name="dreamcad.load_model")
    assert load.properties == {"model_id": "gated"} and not layout.find("progress")

    shelf.from_states((ModelState("gated", "loaded", "cuda:0", vram_mb=8704.0),))
    layout = draw(connected)
    assert "loaded (8.5 GB)" in layout.texts("label")
    (release,) = layout.find("operator", name="dreamcad.release_model")
    assert release.properties == {"model_id": "gated"}

    error = ErrorInfo("cuda_out_of_memory", "GPU out of memory: tried 9 GB", None, "Close apps.")
    shelf.from_states((ModelState("gated", "error", "cuda:0", error=error),))
    layout = draw(connected)
    text = " | ".join(layout.texts("label"))
    assert "failed" in text and "GPU out of memory: tried 9 GB" in text and "Close apps." in text
    (retry,) = layout.find("operator", name="dreamcad.load_model")
    assert retry.text == "Retry"


def test_one_best_fit_for_the_chosen_task_is_starred_and_the_tooltip_says_why(connected) -> None:
    session = connected.runtime.STATE.session
    shelf, settings = session.shelf, bpy.context.scene.dreamcad
    small = dataclasses.replace(GATED, id="small", name="Small", vram_mb=6000,
                                weights_present=True, available=True, license_gated=False)
    big = dataclasses.replace(small, id="big", name="Big", tasks=("image", "texture"),
                              vram_mb=12000)  # fmt: skip
    text = dataclasses.replace(small, id="words", name="Words", tasks=("text",))
    with_models(connected, GATED, small, big, text)
    gpu = GpuInfo(index=0, name="GPU", memory_total_mb=24000, memory_free_mb=16000)
    session.hello = dataclasses.replace(session.hello, gpus=(gpu,))
    present = [ModelState(m, "present") for m in ("small", "big", "words")]
    shelf.from_states((*present, ModelState("gated", "missing")))

    def starred(layout: RecordingLayout) -> list[str]:
        return [t for t in layout.texts("label") if t.endswith(" ★")]

    settings.shelf_task = "image"
    layout = draw(connected)
    assert layout.find("prop", name="shelf_task")
    assert "Best for one image: Big" in layout.texts("label")
    assert starred(layout) == ["Big ★"]  # one star, though three models fit
    settings.shelf_task = "text"
    layout = draw(connected)
    assert "Best for text: Words" in layout.texts("label") and starred(layout) == ["Words ★"]

    session.hello = dataclasses.replace(session.hello, gpus=(dataclasses.replace(
        gpu, memory_free_mb=8000),))  # a ping saw less free memory: Big no longer fits
    settings.shelf_task = "image"
    assert starred(draw(connected)) == ["Small ★"]
    settings.shelf_task = "texture"
    layout = draw(connected)
    assert not starred(layout)
    assert "No model for texture fits the free GPU memory now" in layout.texts("label")

    session.hello = dataclasses.replace(session.hello, gpus=(gpu,))
    shelf.from_states((ModelState("small", "error"), ModelState("big", "missing"),
                       ModelState("words", "present"), ModelState("gated", "missing")))
    settings.shelf_task = "image"
    layout = draw(connected)  # nothing ready: the best one to download (it fits after)
    assert "Best for one image: Big (download first)" in layout.texts("label")
    assert starred(layout) == ["Big ★"]

    items = settings.bl_rna.properties["shelf_task"].enum_items
    assert {i.identifier for i in items} == {"text", "image", "multi_image", "texture"}
    for item in items:  # the tooltip of each task button states the rule
        assert connected.client.best_fit.RULE in item.description


def test_load_and_release_round_trip_through_the_backend(connected) -> None:
    session = connected.runtime.STATE.session
    state = session.shelf.state_of("procedural")
    assert state is not None and state.state in ("present", "loaded")
    if state.state == "loaded":  # the shared backend ran procedural jobs for earlier tests
        assert bpy.ops.dreamcad.release_model(model_id="procedural") == {"FINISHED"}
        pump(connected, lambda: session.shelf.state_of("procedural").state == "present", 30)
    assert bpy.ops.dreamcad.load_model(model_id="procedural") == {"FINISHED"}
    pump(connected, lambda: session.shelf.state_of("procedural").state == "loaded", 30)
    layout = draw(connected)
    assert any(c.properties == {"model_id": "procedural"}
               for c in layout.find("operator", name="dreamcad.release_model"))  # fmt: skip
    assert bpy.ops.dreamcad.release_model(model_id="procedural") == {"FINISHED"}
    pump(connected, lambda: session.shelf.state_of("procedural").state == "present", 30)
