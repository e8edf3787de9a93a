"""download_cursor.py in real bpy: Blender's cursor progress follows the shelf's downloads.

Background Blender has no cursor to look at and the window manager does not expose its
progress, so the add-on's own record of what it showed (``STATE.cursor_progress``) is checked;
the calls themselves are the real ``window_manager.progress_*``. Download events go into the
shelf as the session hands them over (client/shelf.py).
"""

from __future__ import annotations

import bpy

from shared_protocol.errors import ErrorInfo
from shared_protocol.messages import (
    DownloadFinishedEvent,
    DownloadInfo,
    DownloadProgress,
    DownloadProgressEvent,
)

MODEL = "shap-e-img2img"


def progress_event(fraction: float, model: str = MODEL) -> DownloadProgressEvent:
    total = 1000
    done = int(total * fraction)
    progress = DownloadProgress(done, total, 0, 3, 100.0, 1.0, "model.ckpt", fraction)
    return DownloadProgressEvent(download_id=f"d-{model}", model=model, progress=progress)


def finished_event(state: str, model: str = MODEL) -> DownloadFinishedEvent:
    error = ErrorInfo("hub_unreachable", "the hub did not answer", None, None)
    info = DownloadInfo(f"d-{model}", model, (), state, 0.0,
                        error=error if state == "failed" else None)  # fmt: skip
    return DownloadFinishedEvent(download=info)


def test_the_cursor_shows_downloads_and_ends_on_finish_cancel_and_error(connected) -> None:
    cursor, state = connected.download_cursor, connected.runtime.STATE
    shelf = state.session.shelf
    cursor.sync()
    assert state.cursor_progress is None  # nothing downloading: nothing begun
    for end in ("succeeded", "cancelled", "failed"):
        shelf.event(progress_event(0.25))
        cursor.sync()
        assert state.cursor_progress == 0.25
        shelf.event(progress_event(0.5))
        shelf.event(progress_event(0.1, model="other"))  # two at once: their mean
        cursor.sync()
        assert state.cursor_progress == 0.3
        shelf.event(finished_event(end, model="other"))
        cursor.sync()
        assert state.cursor_progress == 0.5
        shelf.event(finished_event(end))
        cursor.sync()
        assert state.cursor_progress is None, end
    shelf.event(progress_event(0.75))
    cursor.sync()
    state.session.close()  # the connection is gone: nothing downloads as far as we know
    cursor.sync()
    assert state.cursor_progress is None


def test_the_timer_tick_drives_it_and_unregistering_ends_it(connected) -> None:
    runtime, state = connected.runtime, connected.runtime.STATE
    state.session.shelf.event(progress_event(0.4))
    connected.download_cursor.sync()
    state.session.shelf.event(finished_event("succeeded"))
    runtime.tick()  # no ping reply can make it downloading again: only the tick can end it
    assert state.cursor_progress is None
    state.session.shelf.event(progress_event(0.4))
    connected.download_cursor.sync()
    assert state.cursor_progress == 0.4
    runtime.shutdown()  # what unregister runs
    try:
        assert state.cursor_progress is None
    finally:
        runtime.start()
    assert bpy.app.timers.is_registered(runtime.tick)
