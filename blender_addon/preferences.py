"""The add-on's preferences: where the backend is, how to reach it, and where results go.

Kept per user (not per .blend): backend address, CURVE keys for a backend on another machine,
the backend Python environment for a local backend the add-on starts and stops, and the output
directory. ``preferences()`` is how other modules read them at the moment they need them.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from shared_protocol.client import CurveKeys
from shared_protocol.errors import ErrorCode, ProtocolError

from .ui.preferences_view import draw_preferences  # drawing lives with the UI code

ADDON_ID = __package__  # "bl_ext.<repository>.dreamcad" once installed as an extension
DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


class DREAMCAD_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    backend_address: StringProperty(
        name="Backend Address",
        default=DEFAULT_ADDRESS,
        description="ZeroMQ address of the Dream CAD backend, e.g. tcp://127.0.0.1:5555",
    )
    use_curve: BoolProperty(
        name="Encrypt (CURVE)",
        description="Use CURVE keys, needed for a backend bound on a non-loopback address",
    )
    curve_server_public: StringProperty(name="Server Public Key", description="Z85, 40 chars")
    curve_client_public: StringProperty(name="Client Public Key", description="Z85, 40 chars")
    curve_client_secret: StringProperty(
        name="Client Secret Key", subtype="PASSWORD", description="Z85, 40 chars"
    )
    backend_python: StringProperty(
        name="Backend Python",
        subtype="FILE_PATH",
        description="Interpreter of the backend's environment, e.g. .venv/backend/bin/python",
    )
    backend_data_dir: StringProperty(
        name="Backend Data",
        subtype="DIR_PATH",
        description="Job database and results of a local backend (empty: the add-on's folder)",
    )
    start_backend_on_enable: BoolProperty(
        name="Start Local Backend with Blender",
        description="Start the local backend when the add-on is enabled",
    )
    output_directory: StringProperty(
        name="Output Directory",
        subtype="DIR_PATH",
        description="Where generated GLB files and previews are written "
        "(empty: the add-on's user folder)",
    )
    import_gaussians: BoolProperty(
        name="Import Gaussian Splats",
        default=True,
        description="When a model also makes 3D Gaussians (TRELLIS with its Gaussian splats "
        "option), fetch the .ply and import it as a coloured point cloud beside the mesh",
    )
    reply_timeout_s: FloatProperty(
        name="Reply Timeout",
        default=10.0,
        min=1.0,
        max=300.0,
        unit="TIME_ABSOLUTE",
        description="A backend that answers nothing for this long is reported as down",
    )

    def draw(self, context: bpy.types.Context) -> None:
        draw_preferences(self, self.layout, context)


def preferences() -> DREAMCAD_AP_preferences:
    return bpy.context.preferences.addons[ADDON_ID].preferences


def user_path(name: str) -> Path:
    """A folder or file inside the add-on's own user directory (created for folders)."""
    return Path(bpy.utils.extension_path_user(ADDON_ID, path=name, create=True))


def output_directory(prefs: DREAMCAD_AP_preferences) -> Path:
    chosen = bpy.path.abspath(prefs.output_directory) if prefs.output_directory else ""
    path = Path(chosen) if chosen else user_path("results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def curve_keys(prefs: DREAMCAD_AP_preferences) -> CurveKeys | None:
    """The CURVE keys when encryption is on; ProtocolError names a missing or bad key."""
    if not prefs.use_curve:
        return None
    keys = {
        "curve_server_public": prefs.curve_server_public,
        "curve_client_public": prefs.curve_client_public,
        "curve_client_secret": prefs.curve_client_secret,
    }
    for field, value in keys.items():
        if len(value.strip()) != 40:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"{field.replace('_', ' ')} must be 40 Z85 characters, got {len(value.strip())}",
                field=field,
                hint="Copy the keys printed by `dreamcad-backend keys` on the backend machine.",
            )
    return CurveKeys(*(value.strip().encode() for value in keys.values()))


CLASSES = (DREAMCAD_AP_preferences,)
