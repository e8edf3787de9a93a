"""Preview thumbnails of finished jobs: the backend's small PNG, as icons for the job queue.

The backend sends a PNG ``preview`` with each result (result_event / fetch_reply); results.py
writes it next to the asset and ``load`` puts it into a ``bpy.utils.previews`` collection keyed
by job id. The collection lives in ``STATE.previews`` from register to unregister (``open`` /
``close``), and a job's preview is freed when the job is deleted. A preview collection, not
``bpy.data.images``: it is not part of the .blend, so undo, saving and opening files leave it
alone. Blender makes icons only when it has a UI: in background mode (the bpy module, batch
scripts) every preview's ``icon_id`` is 0 (BKE_icon_preview_ensure), and the queue draws the
job's state icon instead.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from .live_state import STATE


def open_collection() -> None:
    import bpy.utils.previews

    if STATE.previews is None:
        STATE.previews = bpy.utils.previews.new()


def close_collection() -> None:
    """Free every preview (unregister)."""
    import bpy.utils.previews

    if STATE.previews is not None:
        bpy.utils.previews.remove(STATE.previews)
        STATE.previews = None


def load(job_id: str, png_path: Path) -> None:
    """Load (or replace) the preview of ``job_id`` from a PNG file."""
    if STATE.previews is None:
        return
    replacing = job_id in STATE.previews
    if replacing:
        free(job_id)
    # force_reload: the thumbnail cache is keyed by path and a re-fetch rewrites the same file.
    STATE.previews.load(job_id, str(png_path), "IMAGE", force_reload=replacing)


def free(job_id: str) -> None:
    if STATE.previews is not None and job_id in STATE.previews:
        del STATE.previews[job_id]


def preview(job_id: str) -> bpy.types.ImagePreview | None:
    if STATE.previews is None:
        return None
    return STATE.previews.get(job_id)


def icon_id(job_id: str) -> int:
    """The icon id to draw for ``job_id``'s preview; 0 when there is none (or no UI)."""
    found = preview(job_id)
    return found.icon_id if found is not None else 0
