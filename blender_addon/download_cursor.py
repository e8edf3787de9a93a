"""Blender's own progress (the cursor's) while the backend downloads model weights.

The shelf's bar shows each download in the sidebar; this mirrors them in
``window_manager.progress_begin/update/end``, which Blender shows wherever the artist is
working. ``sync`` runs on every timer tick and follows the shelf (client/shelf.py): while any
model is downloading, the cursor shows their mean fraction; when none is (finished, cancelled,
failed, or the connection is gone) it is ended. ``end`` ends it when the add-on unregisters.
What is shown lives in ``live_state.STATE.cursor_progress``, so it is begun and ended once each.
"""

from __future__ import annotations

import bpy

from . import live_state


def downloading_fraction() -> float | None:
    """The mean fraction of the running downloads, or None when none runs (or no connection)."""
    shelf = live_state.shelf()
    if shelf is None:
        return None
    fractions = [s.fraction for states in shelf.states.values() for s in states
                 if s.state == "downloading"]  # fmt: skip
    return sum(fractions) / len(fractions) if fractions else None


def sync() -> None:
    now = downloading_fraction()
    shown = live_state.STATE.cursor_progress
    if now is None:
        end()
        return
    wm = bpy.context.window_manager
    if shown is None:
        wm.progress_begin(0.0, 1.0)
    if now != shown:
        wm.progress_update(now)
    live_state.STATE.cursor_progress = now


def end() -> None:
    if live_state.STATE.cursor_progress is None:
        return
    live_state.STATE.cursor_progress = None
    wm = bpy.context.window_manager
    if wm is not None:  # None while Blender quits
        wm.progress_end()
