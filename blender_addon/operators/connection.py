"""Connect to the backend, start or stop a local one, and pick a model from its list."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, StringProperty

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import GENERATE_TASKS

from .. import live_state, runtime
from ..properties import sync_parameters
from .reporting import report_error


class DREAMCAD_OT_connect(bpy.types.Operator):
    """Connect (again) to the backend at the address in the preferences"""

    bl_idname = "dreamcad.connect"
    bl_label = "Retry"

    timeout_s: FloatProperty(
        name="Timeout", default=runtime.CONNECT_WAIT_S, min=0.1, options={"SKIP_SAVE"},
        description="Background mode: how long to wait for the backend's answer",
    )

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            if bpy.app.background:
                runtime.wait_until_connected(self.timeout_s)
            else:
                runtime.connect()
        except ProtocolError as error:
            return report_error(self, error)
        return {"FINISHED"}


class DREAMCAD_OT_start_local_backend(bpy.types.Operator):
    """Start a backend on this machine with the Python environment set in the preferences"""

    bl_idname = "dreamcad.start_local_backend"
    bl_label = "Start Local Backend"

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            backend = runtime.start_local_backend()
        except ProtocolError as error:
            return report_error(self, error)
        self.report({"INFO"}, f"Dream CAD: backend starting (log: {backend.log_path})")
        return {"FINISHED"}


class DREAMCAD_OT_stop_local_backend(bpy.types.Operator):
    """Stop the backend this Blender started"""

    bl_idname = "dreamcad.stop_local_backend"
    bl_label = "Stop Local Backend"

    @classmethod
    def poll(cls, _context: bpy.types.Context) -> bool:
        return runtime.STATE.local_backend is not None

    def execute(self, _context: bpy.types.Context) -> set[str]:
        runtime.stop_local_backend()
        return {"FINISHED"}


class DREAMCAD_OT_select_model(bpy.types.Operator):
    """Use this model and show its parameters"""

    bl_idname = "dreamcad.select_model"
    bl_label = "Select Model"
    bl_options = {"REGISTER", "UNDO"}

    model_id: StringProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        model = live_state.model_info(self.model_id)
        if model is None:
            return report_error(self, ProtocolError(
                ErrorCode.UNKNOWN_MODEL, f"the backend has no model {self.model_id!r}",
                field="model"))
        if not model.available:
            return report_error(self, ProtocolError(
                ErrorCode.WEIGHTS_MISSING if not model.weights_present
                else ErrorCode.MODEL_UNAVAILABLE,
                f"{model.name} cannot run here: {model.unavailable_reason}", field="model"))
        generating = [task for task in model.tasks if task in GENERATE_TASKS]
        if not generating:
            return report_error(self, ProtocolError(
                ErrorCode.UNSUPPORTED_TASK, f"{model.name} makes no new asset: it works on a "
                f"mesh you have ({', '.join(model.tasks)})", field="model"))
        settings = context.scene.dreamcad
        settings.model_id = model.id
        if settings.task not in generating:
            settings.task = generating[0]
        sync_parameters(settings, model)
        return {"FINISHED"}


CLASSES = (
    DREAMCAD_OT_connect,
    DREAMCAD_OT_start_local_backend,
    DREAMCAD_OT_stop_local_backend,
    DREAMCAD_OT_select_model,
)
