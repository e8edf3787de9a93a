"""The one owner of the add-on's live state, and the timer tick that keeps it current.

Everything that lives only while Blender runs is here: the backend session, the local backend
process, what to do with each result (placement chosen at submit time), result files, preview
icons and the last message for the panel. ``tick`` is registered with ``bpy.app.timers``: it
drains the socket without waiting, imports finished results on the main thread, refreshes the
queue's display rows and redraws the panel; it keeps no bpy objects or context between ticks
(objects are found again by name). Background mode has no timers, so ``wait_for`` polls the
same way until a submitted job has been imported or has failed.
"""

from __future__ import annotations

import atexit
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import ModelInfo, SubmitRequest

from . import importer
from .client.records import (
    Connected,
    ConnectionState,
    Disconnected,
    JobEnded,
    JobRecord,
    JobsListed,
    Notification,
    RequestFailed,
    ResultReady,
    client_error,
)
from .client.session import Session
from .local_backend import LocalBackend

log = logging.getLogger(__name__)
ADDON_VERSION = "0.1.0"
FAST_TICK_S = 0.1  # while anything is in flight
IDLE_TICK_S = 0.5
LOG_REFRESH_S = 1.0
LOCAL_START_TIMEOUT_S = 120.0  # a fresh backend imports torch before it answers hello
CONNECT_WAIT_S = 30.0  # how long background mode waits for a hello reply


@dataclass
class SubmitPlan:
    """What to do with one submitted job's result, and how it went."""

    placement: importer.Placement
    inputs: dict[str, str] = field(default_factory=dict)
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
        self.session: Session | None = None
        self.local_backend: LocalBackend | None = None
        self.plans: dict[str, SubmitPlan] = {}  # by submit msg_id
        self.result_files: dict[str, Path] = {}  # job_id -> GLB
        self.import_requested: set[str] = set()  # job ids to import when fetched
        self.offered: set[str] = set()  # finished jobs whose result is not in this .blend
        self.report: Report | None = None
        self.log_lines: list[str] = []
        self.previews = None  # a bpy.utils.previews collection while registered
        self.rows_dirty = True
        self._last_log_read = 0.0
        self._local_exit_reported = False


STATE = Runtime()


# --- connection -------------------------------------------------------------------------------


def connect(timeout_s: float | None = None) -> Session:
    """(Re)connect with the current preferences; the answer arrives in a later tick."""
    from .preferences import curve_keys, preferences

    prefs = preferences()
    old_jobs = STATE.session.jobs if STATE.session else {}
    if STATE.session is not None:
        STATE.session.close()
    session = Session(
        prefs.backend_address.strip(),
        curve=curve_keys(prefs),
        client_version=ADDON_VERSION,
        reply_timeout_s=prefs.reply_timeout_s,
        connect_timeout_s=timeout_s,
    )
    if old_jobs and STATE.session and STATE.session.address == session.address:
        session.jobs = old_jobs  # watched again and fetched once hello is answered
    STATE.session = session
    session.connect()
    set_report("INFO", f"Connecting to {session.address}...")
    ensure_timer()
    return session


def models() -> tuple[ModelInfo, ...]:
    session = STATE.session
    if session is None or session.hello is None or not session.connected:
        return ()
    return session.hello.models


def model_info(model_id: str) -> ModelInfo | None:
    return next((m for m in models() if m.id == model_id), None)


def require_session() -> Session:
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


def start_local_backend() -> LocalBackend:
    """Launch the backend from the preferences' Python environment and connect to it."""
    from .preferences import preferences, user_path

    prefs = preferences()
    if STATE.local_backend is not None and STATE.local_backend.running:
        return STATE.local_backend
    data_dir = bpy.path.abspath(prefs.backend_data_dir) if prefs.backend_data_dir else ""
    backend = LocalBackend(
        python=Path(bpy.path.abspath(prefs.backend_python)),
        address=prefs.backend_address.strip(),
        data_dir=Path(data_dir) if data_dir else user_path("backend-data"),
        log_path=user_path("logs") / "backend.log",
    )
    backend.start()
    STATE.local_backend = backend
    STATE._local_exit_reported = False
    connect(timeout_s=LOCAL_START_TIMEOUT_S)
    return backend


def stop_local_backend() -> None:
    if STATE.local_backend is not None:
        STATE.local_backend.stop()
        STATE.local_backend = None
    if STATE.session is not None:
        STATE.session.close()
    set_report("INFO", "Local backend stopped.")


# --- jobs ---------------------------------------------------------------------------------------


def submit(request: SubmitRequest, plan: SubmitPlan) -> str:
    msg_id = require_session().submit(request)
    STATE.plans[msg_id] = plan
    STATE.rows_dirty = True
    ensure_timer()
    return msg_id


def import_job(job_id: str, placement: importer.Placement | None = None) -> str:
    """Import a job's result file and return the new object's name."""
    job = _job(job_id)
    path = STATE.result_files.get(job_id)
    if path is None or not path.is_file():
        raise ProtocolError(ErrorCode.RESULT_EXPIRED, f"the result of {job.name!r} is not here yet",
                            hint="Import it from the queue; the add-on fetches it first.")
    plan = next((p for p in STATE.plans.values() if p.job_id == job_id), None)
    if placement is None:
        placement = plan.placement if plan else importer.Placement(
            location=tuple(bpy.context.scene.cursor.location)
        )
    session = STATE.session
    hello_version = session.hello.backend_version if session and session.hello else ""
    provenance = importer.Provenance(
        prompt=job.prompt,
        model=job.model,
        seed=job.seed,
        job_id=job.job_id,
        backend_version=(job.manifest.backend_version if job.manifest else "") or hello_version,
        settings=job.settings,
        inputs=plan.inputs if plan else {},
    )
    obj = importer.import_glb(path, display_name(job), placement, provenance)
    STATE.offered.discard(job_id)
    if plan is not None:
        plan.object_name = obj.name
    STATE.rows_dirty = True
    return obj.name


def display_name(job: JobRecord) -> str:
    """The object name for a job: its prompt, else its image file's name."""
    plan = next((p for p in STATE.plans.values() if p.job_id == job.job_id), None)
    image = Path(plan.inputs.get("image", "")).stem if plan else ""
    return importer.object_name(job.prompt, image or job.name or "Dream CAD Asset")


def request_import(job_id: str) -> str | None:
    """Import now if the result is here; otherwise fetch it and import when it arrives."""
    if job_id in STATE.result_files and STATE.result_files[job_id].is_file():
        return import_job(job_id)
    require_session().fetch(job_id)
    STATE.import_requested.add(job_id)
    return None


def active_job() -> JobRecord | None:
    """The newest job submitted here that is still running or queued."""
    session = STATE.session
    if session is None:
        return None
    live = [j for j in session.jobs.values() if j.submitted_here and not j.finished]
    return live[-1] if live else None


def set_report(level: str, message: str, hint: str = "") -> None:
    STATE.report = Report(level, message, hint)
    (log.error if level == "ERROR" else log.info)("%s %s", message, hint)


# --- the tick -----------------------------------------------------------------------------------


def tick() -> float:
    """The bpy.app.timers callback: never blocks, never raises (a raising timer is dropped)."""
    try:
        notes = STATE.session.poll() if STATE.session is not None else []
        process(notes, push_undo=True)
        _watch_local_backend()
        if STATE.rows_dirty:
            sync_rows()
        if notes:
            _redraw()
    except Exception:  # keep the timer alive; the traceback goes to the console
        log.exception("Dream CAD timer tick failed")
        set_report("ERROR", "Internal error in the Dream CAD add-on; see the system console.")
    session = STATE.session
    return FAST_TICK_S if session is not None and session.busy else IDLE_TICK_S


def process(notes: list[Notification], *, push_undo: bool) -> None:
    """Act on what the session reported: save and import results, remember failures."""
    for note in notes:
        STATE.rows_dirty = True
        _link_plans()  # a result can arrive in the same tick as its submit reply
        if isinstance(note, Connected):
            hello = note.hello
            set_report("INFO", f"Connected: backend {hello.backend_version}, "
                       f"{len(hello.models)} models.")
            _refresh_parameters()
        elif isinstance(note, Disconnected):  # jobs stay: they are picked up on reconnect
            set_report("ERROR", note.error.message, note.error.hint or "")
        elif isinstance(note, ResultReady):
            _on_result(note, push_undo)
        elif isinstance(note, JobEnded):
            _fail_plan(note.job_id, note.error)
            level = "INFO" if note.state == "cancelled" else "ERROR"
            set_report(level, f"{_job(note.job_id).name or note.job_id}: {note.error.message}",
                       note.error.hint or "")
        elif isinstance(note, RequestFailed):
            if note.msg_id in STATE.plans:
                STATE.plans[note.msg_id].error = note.error
            elif note.job_id:
                _fail_plan(note.job_id, note.error)
            set_report("ERROR", f"{note.action} failed: {note.error.message}",
                       note.error.hint or "")
        elif isinstance(note, JobsListed):
            _offer_finished(note.job_ids)
    _link_plans()


def wait_until_connected(timeout_s: float) -> Session:
    """Background mode: connect if needed and poll until hello is answered or fails."""
    session = STATE.session
    if session is None or session.state not in (ConnectionState.CONNECTED,
                                                ConnectionState.CONNECTING):
        session = connect(timeout_s)
    while session.state is ConnectionState.CONNECTING:
        process(session.poll(wait_s=0.2), push_undo=False)
    return require_session()


def wait_for(msg_id: str, timeout_s: float) -> SubmitPlan:
    """Background mode: poll until the job submitted as ``msg_id`` is imported or has failed."""
    plan = STATE.plans[msg_id]
    deadline = time.monotonic() + timeout_s
    while not plan.done:
        session = STATE.session
        if session is None or session.state in (ConnectionState.LOST,
                                                ConnectionState.INCOMPATIBLE):
            plan.error = (session.error if session else None) or client_error(
                ErrorCode.BACKEND_UNREACHABLE, "the connection to the backend was closed")
            break
        if time.monotonic() > deadline:
            plan.error = client_error(ErrorCode.TIMEOUT,
                                      f"the job did not finish within {timeout_s:g} s")
            break
        process(session.poll(wait_s=0.2), push_undo=False)
    return plan


def _on_result(note: ResultReady, push_undo: bool) -> None:
    from .preferences import output_directory, preferences

    job = _job(note.job_id)
    folder = output_directory(preferences())
    stem = f"{display_name(job).replace(' ', '_')}_{note.job_id[:8]}"
    path = folder / f"{stem}.{note.manifest.format}"
    path.write_bytes(note.asset)
    STATE.result_files[note.job_id] = path
    if note.preview:
        preview_path = folder / f"{stem}_preview.png"
        preview_path.write_bytes(note.preview)
        _load_preview(note.job_id, preview_path)
    wanted = note.job_id in STATE.import_requested or (
        job.submitted_here and not any(p.job_id == note.job_id and p.object_name
                                       for p in STATE.plans.values())
    )
    if not wanted:
        return
    STATE.import_requested.discard(note.job_id)
    try:
        name = import_job(note.job_id)
    except (ProtocolError, RuntimeError) as error:
        info = error.info if isinstance(error, ProtocolError) else client_error(
            ErrorCode.GEOMETRY_FAILED, f"Blender could not import {path.name}: {error}")
        _fail_plan(note.job_id, info)
        set_report("ERROR", info.message, info.hint or "")
        return
    if push_undo and not bpy.app.background:
        bpy.ops.ed.undo_push(message=f"Dream CAD: import {name}")
    set_report("INFO", f"Imported {name}.")


def _link_plans() -> None:
    """Give each plan the job id its submit reply carried."""
    session = STATE.session
    if session is None:
        return
    for job in session.jobs.values():
        plan = STATE.plans.get(job.submit_msg_id)
        if plan is not None and not plan.job_id:
            plan.job_id = job.job_id


def _fail_plan(job_id: str, error: ErrorInfo) -> None:
    _link_plans()
    for plan in STATE.plans.values():
        if plan.job_id == job_id and not plan.done:
            plan.error = error


def _offer_finished(job_ids: tuple[str, ...]) -> None:
    session = STATE.session
    if session is None:
        return
    present = importer.imported_job_ids()
    finished = {j for j in job_ids if session.jobs[j].state == "succeeded"}
    STATE.offered = {j for j in finished - present if not session.jobs[j].submitted_here}
    if STATE.offered:
        set_report("INFO", f"{len(STATE.offered)} finished results are not in this file yet.",
                   "Import them from the Dream CAD queue.")


def _refresh_parameters() -> None:
    from .properties import sync_parameters

    for scene in bpy.data.scenes:
        settings = scene.dreamcad
        model = model_info(settings.model_id)
        if model is None and models():
            available = [m for m in models() if m.available] or list(models())
            settings.model_id = available[0].id
            model = available[0]
        if model is not None and settings.task not in model.tasks:
            settings.task = model.tasks[0]
        names = [p.name for p in settings.parameters]
        if model is not None and names != [p.name for p in model.parameters]:
            sync_parameters(settings, model)


def _watch_local_backend() -> None:
    backend = STATE.local_backend
    if backend is None:
        return
    now = time.monotonic()
    if now - STATE._last_log_read >= LOG_REFRESH_S:
        STATE._last_log_read = now
        lines = backend.log_tail()
        if lines != STATE.log_lines:
            STATE.log_lines = lines
            _redraw()
    code = backend.exit_code
    if code is not None and not STATE._local_exit_reported:
        STATE._local_exit_reported = True
        set_report("ERROR", f"The local backend exited with code {code}.",
                   f"See its log: {backend.log_path}")


def _job(job_id: str) -> JobRecord:
    session = STATE.session
    if session is None or job_id not in session.jobs:
        raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no job {job_id} in this session")
    return session.jobs[job_id]


def _load_preview(job_id: str, path: Path) -> None:
    if STATE.previews is not None and job_id not in STATE.previews:
        STATE.previews.load(job_id, str(path), "IMAGE")


def preview_icon(job_id: str) -> int:
    if STATE.previews is None or job_id not in STATE.previews:
        return 0
    return STATE.previews[job_id].icon_id


def sync_rows() -> None:
    """Copy the job list into the UIList's display rows (newest first)."""
    STATE.rows_dirty = False
    live = bpy.context.window_manager.dreamcad_live
    session = STATE.session
    jobs = list(session.jobs.values())[::-1] if session else []
    present = importer.imported_job_ids()
    live.jobs.clear()
    for job in jobs:
        row = live.jobs.add()
        row.job_id = job.job_id
        row.label = job.name or job.prompt or job.job_id[:8]
        row.state = job.state
        row.percent = job.percent
        row.imported = job.job_id in present
        row.preview_icon = preview_icon(job.job_id)
        row.detail = job.error.message if job.error else (
            job.progress.stage if job.progress and not job.finished else job.model)
    live.active_job_index = min(live.active_job_index, max(0, len(live.jobs) - 1))


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


# --- lifetime -----------------------------------------------------------------------------------


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=FAST_TICK_S, persistent=True)


@bpy.app.handlers.persistent
def _on_load_post(*_args: object) -> None:
    STATE.rows_dirty = True  # another .blend: which results it holds has changed


def start() -> None:
    import bpy.utils.previews

    STATE.previews = bpy.utils.previews.new()
    bpy.app.handlers.load_post.append(_on_load_post)
    atexit.register(_stop_at_exit)
    ensure_timer()


def shutdown() -> None:
    import bpy.utils.previews

    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    atexit.unregister(_stop_at_exit)
    _stop_at_exit()
    if STATE.previews is not None:
        bpy.utils.previews.remove(STATE.previews)
    STATE.__init__()


def _stop_at_exit() -> None:
    """Stop what we started: the local backend and the socket."""
    if STATE.local_backend is not None:
        STATE.local_backend.stop()
    if STATE.session is not None:
        STATE.session.close()
