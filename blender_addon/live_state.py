"""The add-on's live state: one ``Runtime`` instance (``STATE``) and the plans for its jobs.

Everything that lives only while Blender runs has its home here: the backend session, the
local backend process, what to do with each submitted job's result (placement chosen at submit
time), result files, preview icons and the last message for the panel. runtime.py drives it
from the timer; results.py delivers finished assets into it; the UI reads it, through ``STATE``
and the read-only accessors below (``models``, ``model_info``, ``active_job``), never through
runtime.py. No bpy objects or context are kept here between timer ticks: objects are referred
to by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import ModelInfo

from . import importer
from .client.records import JobRecord
from .client.session import Session
from .local_backend import LocalBackend
from .mesh_results import MeshTarget

log = logging.getLogger(__name__)


@dataclass
class SubmitPlan:
    """What to do with one submitted job's result, and how it went."""

    placement: importer.Placement
    inputs: dict[str, str] = field(default_factory=dict)
    # texture/optimize of a scene object: the result goes back onto it (mesh_results.py)
    mesh_target: MeshTarget | None = None
    job_id: str = ""
    object_name: str = ""
    error: ErrorInfo | None = None

    @property
    def done(self) -> bool:
        return bool(self.object_name) or self.error is not None


@dataclass
class Report:
    level: str  # INFO, WARNING or ERROR
    message: str
    hint: str = ""


class Runtime:
    """The live state (one instance, ``STATE``)."""

    def __init__(self) -> None:
        self.previews = None  # job id -> preview, while registered (job_previews.py)
        # What Blender's cursor progress shows (download_cursor.py), None: nothing. It mirrors
        # Blender's own state, not the session's, so ``reset`` keeps it: only ending clears it.
        self.cursor_progress: float | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the session, the local backend, jobs and messages (on unregister).

        The preview collection stays: it is opened and closed with registration
        (job_previews.py), not with a session.
        """
        self.session: Session | None = None
        self.local_backend: LocalBackend | None = None
        self.plans: dict[str, SubmitPlan] = {}  # by submit msg_id
        self.result_files: dict[str, Path] = {}  # job_id -> GLB
        self.import_requested: set[str] = set()  # job ids to import when fetched
        self.offered: set[str] = set()  # finished jobs whose result is not in this .blend
        self.report: Report | None = None
        self.log_lines: list[str] = []
        self.rows_dirty = True
        self._last_log_read = 0.0
        self._local_exit_reported = False

    def local_backend_started(self, backend: LocalBackend) -> None:
        """Remember the local backend just started; its exit will be reported once."""
        self.local_backend = backend
        self._local_exit_reported = False

    def log_read_due(self, now: float, interval_s: float) -> bool:
        """Whether the local backend's log is due to be read again (if so, it counts as read)."""
        if now - self._last_log_read < interval_s:
            return False
        self._last_log_read = now
        return True

    def exit_report_due(self) -> bool:
        """True once per started local backend: the first time its exit is noticed."""
        due = not self._local_exit_reported
        self._local_exit_reported = True
        return due


STATE = Runtime()


def set_report(level: str, message: str, hint: str = "") -> None:
    """Remember the message the panel shows (and log it)."""
    STATE.report = Report(level, message, hint)
    (log.error if level == "ERROR" else log.info)("%s %s", message, hint)


def models() -> tuple[ModelInfo, ...]:
    """The connected backend's models (none while not connected)."""
    session = STATE.session
    if session is None or session.hello is None or not session.connected:
        return ()
    return session.hello.models


def shelf():
    """The connected backend's model states and downloads (client/shelf.py), or None."""
    session = STATE.session
    if session is None or session.hello is None or not session.connected:
        return None
    return session.shelf


def model_info(model_id: str) -> ModelInfo | None:
    return next((m for m in models() if m.id == model_id), None)


def active_job() -> JobRecord | None:
    """The newest job submitted here that is still running or queued."""
    session = STATE.session
    if session is None:
        return None
    live = [j for j in session.jobs.values() if j.submitted_here and not j.finished]
    return live[-1] if live else None


def require_session() -> Session:
    """The connected session, or BACKEND_UNREACHABLE with why and what to do."""
    session = STATE.session
    if session is None or not session.connected:
        reason = session.error if session and session.error else None
        raise ProtocolError(
            ErrorCode.BACKEND_UNREACHABLE,
            reason.message if reason else "not connected to a backend",
            hint=(reason.hint if reason else None)
            or "Press Retry in the Dream CAD panel, or start a local backend.",
        )
    return session


def job_record(job_id: str) -> JobRecord:
    """The session's record of ``job_id``; UNKNOWN_JOB when this session does not know it."""
    session = STATE.session
    if session is None or job_id not in session.jobs:
        raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no job {job_id} in this session")
    return session.jobs[job_id]


def plan_for(job_id: str) -> SubmitPlan | None:
    """The plan of the submit that became ``job_id`` (None for jobs from elsewhere)."""
    return next((p for p in STATE.plans.values() if p.job_id == job_id), None)


def link_plans() -> None:
    """Give each plan the job id its submit reply carried."""
    session = STATE.session
    if session is None:
        return
    for record in session.jobs.values():
        plan = STATE.plans.get(record.submit_msg_id)
        if plan is not None and not plan.job_id:
            plan.job_id = record.job_id


def fail_plan(job_id: str, error: ErrorInfo) -> None:
    """Mark the plan waiting for ``job_id`` as failed with ``error``."""
    link_plans()
    for plan in STATE.plans.values():
        if plan.job_id == job_id and not plan.done:
            plan.error = error
