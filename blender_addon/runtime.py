"""The add-on's live side: connecting, submitting, and the timer tick that keeps state current.

The state itself lives in live_state.py (``STATE``, re-exported here with ``SubmitPlan`` for
the operators), beside the read-only accessors the UI uses; finished results are delivered by
results.py. ``tick`` is registered with ``bpy.app.timers``: it drains the socket without
waiting, hands results to results.py on the main thread, refreshes the queue's display rows and
redraws the panel; it keeps no bpy objects or context between ticks (objects are found again
by name). Background mode has no timers, so ``wait_for`` polls the same way until a submitted
job has been imported or has failed.
"""

from __future__ import annotations

import atexit
import logging
import time
from pathlib import Path

import bpy

from shared_protocol.errors import ErrorCode, ErrorInfo
from shared_protocol.messages import SubmitRequest

from . import compare_jobs, download_cursor, importer, job_previews
from .client.records import (
    Connected,
    ConnectionState,
    Disconnected,
    ExtraFileReady,
    JobDeleted,
    JobEnded,
    JobsListed,
    Notification,
    RequestFailed,
    ResultReady,
    client_error,
    describe_error,
)
from .client.session import Session
from .live_state import (  # STATE and SubmitPlan are this module's public face too
    STATE,
    SubmitPlan,
    fail_plan,
    job_record,
    link_plans,
    model_info,
    models,
    require_session,
    set_report,
)
from .local_backend import LocalBackend
from .preferences import curve_keys, preferences, user_path
from .properties import sync_parameters
from .results import offer_finished, on_extra_file, on_result

log = logging.getLogger(__name__)
ADDON_VERSION = "0.1.0"
FAST_TICK_S = 0.1  # while anything is in flight
IDLE_TICK_S = 0.5
LOG_REFRESH_S = 1.0
LOCAL_START_TIMEOUT_S = 120.0  # a fresh backend imports torch before it answers hello
CONNECT_WAIT_S = 30.0  # how long background mode waits for a hello reply


# --- connection -------------------------------------------------------------------------------


def connect(timeout_s: float | None = None) -> Session:
    """(Re)connect with the current preferences; the answer arrives in a later tick."""
    prefs = preferences()
    old = STATE.session
    if old is not None:
        old.close()
    session = Session(
        prefs.backend_address.strip(),
        curve=curve_keys(prefs),
        client_version=ADDON_VERSION,
        reply_timeout_s=prefs.reply_timeout_s,
        connect_timeout_s=timeout_s,
    )
    if old is not None:
        session.adopt(old)  # its jobs are watched again and fetched once hello is answered
    STATE.session = session
    session.connect()
    set_report("INFO", f"Connecting to {session.address}...")
    ensure_timer()
    return session


def start_local_backend() -> LocalBackend:
    """Launch the backend from the preferences' Python environment and connect to it."""
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
    STATE.local_backend_started(backend)
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


# --- the tick -----------------------------------------------------------------------------------


def tick() -> float:
    """The bpy.app.timers callback: never blocks, never raises (a raising timer is dropped)."""
    try:
        notes = STATE.session.poll() if STATE.session is not None else []
        process(notes, push_undo=True)
        _watch_local_backend()
        download_cursor.sync()
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
        link_plans()  # a result can arrive in the same tick as its submit reply
        if isinstance(note, Connected):
            hello = note.hello
            set_report("INFO", f"Connected: backend {hello.backend_version}, "
                       f"{len(hello.models)} models.")
            _refresh_parameters()
        elif isinstance(note, Disconnected):  # jobs stay: they are picked up on reconnect
            _report_error("ERROR", "", note.error)
        elif isinstance(note, ResultReady):
            on_result(note, push_undo)
        elif isinstance(note, ExtraFileReady):
            on_extra_file(note, push_undo)
        elif isinstance(note, JobEnded):
            fail_plan(note.job_id, note.error)
            level = "INFO" if note.state == "cancelled" else "ERROR"
            _report_error(level, job_record(note.job_id).name or note.job_id, note.error)
        elif isinstance(note, RequestFailed) and note.action == "fetch_file":
            _report_error("WARNING", "fetching the Gaussian splats failed", note.error)
        elif isinstance(note, RequestFailed):
            if note.msg_id in STATE.plans:
                STATE.plans[note.msg_id].error = note.error
            elif note.job_id:
                fail_plan(note.job_id, note.error)
            _report_error("ERROR", f"{note.action} failed", note.error)
        elif isinstance(note, JobsListed):  # this file's compares first: they land in rows
            resumed = compare_jobs.resume(STATE.session) if STATE.session else []
            offer_finished(tuple(j for j in note.job_ids if j not in resumed))
        elif isinstance(note, JobDeleted):
            _forget_job(note.job_id)
    link_plans()


def _report_error(level: str, context: str, error: ErrorInfo) -> None:
    """Show a server's or the client's error in the panel, with the field at fault."""
    message, hint = describe_error(error)
    set_report(level, f"{context}: {message}" if context else message, hint)


def _forget_job(job_id: str) -> None:
    """The backend deleted the job: drop its preview and offer (imported objects stay)."""
    job_previews.free(job_id)
    STATE.offered.discard(job_id)
    STATE.import_requested.discard(job_id)
    STATE.result_files.pop(job_id, None)  # the file on disk stays: it is the user's output


def wait_until_connected(timeout_s: float) -> Session:
    """Background mode: connect if needed and poll until hello is answered or fails."""
    session = STATE.session
    if session is None or session.state not in (ConnectionState.CONNECTED,
                                                ConnectionState.CONNECTING):
        session = connect(timeout_s)
    while session.state is ConnectionState.CONNECTING:
        process(session.poll(wait_s=0.2), push_undo=not bpy.app.background)
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
        # Generate with wait=True in the UI gets an undo step; batch scripts need none.
        process(session.poll(wait_s=0.2), push_undo=not bpy.app.background)
    return plan


def _refresh_parameters() -> None:
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
    if STATE.log_read_due(time.monotonic(), LOG_REFRESH_S):
        lines = backend.log_tail()
        if lines != STATE.log_lines:
            STATE.log_lines = lines
            _redraw()
    code = backend.exit_code
    if code is not None and STATE.exit_report_due():
        set_report("ERROR", f"The local backend exited with code {code}.",
                   f"See its log: {backend.log_path}")


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
        row.preview_icon = job_previews.icon_id(job.job_id)
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
    job_previews.open_collection()
    bpy.app.handlers.load_post.append(_on_load_post)
    atexit.register(_stop_at_exit)
    ensure_timer()


def shutdown() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    atexit.unregister(_stop_at_exit)
    _stop_at_exit()
    download_cursor.end()
    job_previews.close_collection()
    STATE.reset()


def _stop_at_exit() -> None:
    """Stop what we started: the local backend and the socket."""
    if STATE.local_backend is not None:
        STATE.local_backend.stop()
    if STATE.session is not None:
        STATE.session.close()
