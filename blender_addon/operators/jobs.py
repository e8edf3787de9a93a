"""Act on one job of the queue: cancel it, import its result (again), or delete it."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from shared_protocol.errors import ErrorCode, ProtocolError

from .. import live_state, results, runtime
from .reporting import report_error


class DREAMCAD_OT_cancel(bpy.types.Operator):
    """Cancel a job (the running one when none is named)"""

    bl_idname = "dreamcad.cancel"
    bl_label = "Cancel"

    job_id: StringProperty(options={"SKIP_SAVE"})

    def execute(self, _context: bpy.types.Context) -> set[str]:
        job = live_state.active_job()
        job_id = self.job_id or (job.job_id if job else "")
        try:
            if not job_id:
                raise ProtocolError(ErrorCode.UNKNOWN_JOB, "no running job to cancel")
            runtime.require_session().cancel(job_id)
        except ProtocolError as error:
            return report_error(self, error)
        self.report({"INFO"}, "Dream CAD: cancelling")
        return {"FINISHED"}


class DREAMCAD_OT_reimport(bpy.types.Operator):
    """Import this job's result into the scene (fetching it from the backend if needed)"""

    bl_idname = "dreamcad.reimport"
    bl_label = "Import Result"
    bl_options = {"REGISTER", "UNDO"}

    job_id: StringProperty()

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            name = results.request_import(self.job_id)
        except ProtocolError as error:
            return report_error(self, error)
        except RuntimeError as error:  # Blender's glTF importer refused the file
            return report_error(self, ProtocolError(ErrorCode.GEOMETRY_FAILED, str(error)))
        self.report({"INFO"}, f"Dream CAD: imported {name}" if name else "Dream CAD: fetching")
        return {"FINISHED"}


class DREAMCAD_OT_delete(bpy.types.Operator):
    """Delete this job and its files on the backend (objects already imported stay)"""

    bl_idname = "dreamcad.delete"
    bl_label = "Delete Job"

    job_id: StringProperty()

    def execute(self, _context: bpy.types.Context) -> set[str]:
        try:
            runtime.require_session().delete(self.job_id)
        except ProtocolError as error:
            return report_error(self, error)
        runtime.STATE.offered.discard(self.job_id)
        return {"FINISHED"}


CLASSES = (DREAMCAD_OT_cancel, DREAMCAD_OT_reimport, DREAMCAD_OT_delete)
