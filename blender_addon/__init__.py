"""Dream CAD for Blender: generate 3D assets with open models running in a separate backend.

Registration only. The sidebar (ui/) draws the scene's settings (properties.py) and live state
(live_state.py); operators (operators/) build typed requests and hand them to the runtime, whose
timer talks to the backend through client/ without ever blocking Blender; importer.py turns
results into placed objects. See the README for the backend side.
"""

from __future__ import annotations

import bpy

from . import operators, preferences, properties, runtime, ui

# Registration order: property groups before the classes that point at them, panels last
# (sub-panels after their parent).
CLASSES = (
    *preferences.CLASSES,
    *properties.CLASSES,
    *operators.CLASSES,
    *ui.CLASSES,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.attach()
    runtime.start()
    if not bpy.app.background:  # scripts connect when they need to: no timer loop there
        # Not now: registration runs in a restricted context where operators cannot run.
        bpy.app.timers.register(_first_connect, first_interval=0.2)


def _first_connect() -> None:
    from shared_protocol.errors import ProtocolError

    prefs = preferences.preferences()
    try:
        if prefs.start_backend_on_enable and prefs.backend_python:
            runtime.start_local_backend()
        else:
            runtime.connect()
    except ProtocolError as error:
        runtime.set_report("ERROR", str(error), error.hint or "")


def unregister() -> None:
    runtime.shutdown()
    properties.detach()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
