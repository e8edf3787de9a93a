"""The model shelf's buttons: download (on the backend), cancel a download, load, release.

Thin operators: each checks, sends one request through the session and reports. The download
of a model whose licence must be accepted first asks for it (with the link) before anything is
sent; the add-on never downloads weights itself.
"""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from shared_protocol.errors import ErrorCode, ProtocolError

from .. import live_state, runtime
from .reporting import report_error


class DREAMCAD_OT_download_model(bpy.types.Operator):
    """Download this model's weights on the backend's machine (progress shows in the panel)"""

    bl_idname = "dreamcad.download_model"
    bl_label = "Download"

    model_id: StringProperty(options={"SKIP_SAVE"})

    def invoke(self, context: bpy.types.Context, event) -> set[str]:
        model = live_state.model_info(self.model_id)
        if model is not None and model.license_gated:  # accepted on the hub, by the artist
            return context.window_manager.invoke_confirm(
                self, event, title=f"{model.name}: licence", message=(
                    f"{model.license}. Accept it at {model.license_url or model.weights_repo} "
                    "and log the backend in (`hf auth login`) before downloading."
                ), confirm_text="I accepted it: download",
            )  # fmt: skip
        return self.execute(context)

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_session().download(self.model_id)
        except ProtocolError as error:
            return report_error(self, error)
        self.report({"INFO"}, f"Dream CAD: downloading {self.model_id} on the backend")
        return {"FINISHED"}


class DREAMCAD_OT_cancel_download(bpy.types.Operator):
    """Stop this download (what was fetched is kept: downloading again resumes)"""

    bl_idname = "dreamcad.cancel_download"
    bl_label = "Cancel Download"

    download_id: StringProperty(options={"SKIP_SAVE"})

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            if not self.download_id:
                raise ProtocolError(ErrorCode.UNKNOWN_DOWNLOAD, "no download to cancel")
            runtime.require_session().cancel_download(self.download_id)
        except ProtocolError as error:
            return report_error(self, error)
        return {"FINISHED"}


class DREAMCAD_OT_load_model(bpy.types.Operator):
    """Load this model on the backend now, so the next generation starts at once"""

    bl_idname = "dreamcad.load_model"
    bl_label = "Load"

    model_id: StringProperty(options={"SKIP_SAVE"})

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_session().load_model(self.model_id)
        except ProtocolError as error:
            return report_error(self, error)
        return {"FINISHED"}


class DREAMCAD_OT_release_model(bpy.types.Operator):
    """Release this model's GPU memory on the backend (e.g. for Blender's own rendering)"""

    bl_idname = "dreamcad.release_model"
    bl_label = "Release"

    model_id: StringProperty(options={"SKIP_SAVE"})

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_session().release_model(self.model_id)
        except ProtocolError as error:
            return report_error(self, error)
        return {"FINISHED"}


CLASSES = (
    DREAMCAD_OT_download_model,
    DREAMCAD_OT_cancel_download,
    DREAMCAD_OT_load_model,
    DREAMCAD_OT_release_model,
)
