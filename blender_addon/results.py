"""Result delivery: a finished job's asset -> a file on disk, a preview icon, a placed object.

Called on Blender's main thread from the runtime's tick (or its background-mode wait) when a
ResultReady notification arrives, and from the queue's Import button. Jobs submitted here are
imported as soon as their result arrives, with the placement chosen at submit time; results of
jobs from elsewhere (e.g. finished while Blender was closed) are offered and imported on
request, fetching them first when the file is not here yet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy

from shared_protocol.errors import ErrorCode, ProtocolError

from . import compare_jobs, compare_row, importer, job_previews, mesh_results, splat_import
from .client.compare import CompareEntry, parse_key
from .client.records import ExtraFileReady, JobRecord, ResultReady, client_error
from .live_state import STATE, fail_plan, job_record, plan_for, require_session, set_report
from .preferences import output_directory, preferences

log = logging.getLogger(__name__)
GAUSSIANS_FILE = "gaussians.ply"  # the extra file imported as a point cloud (splat_import.py)


def on_result(note: ResultReady, push_undo: bool) -> None:
    """Save the asset (and its preview) and import it if this session is waiting for it."""
    record = job_record(note.job_id)
    folder = output_directory(preferences())
    stem = f"{display_name(record).replace(' ', '_')}_{note.job_id[:8]}"
    path = folder / f"{stem}.{note.manifest.format}"
    path.write_bytes(note.asset)
    STATE.result_files[note.job_id] = path
    if note.preview:
        preview_path = folder / f"{stem}_preview.png"
        preview_path.write_bytes(note.preview)
        job_previews.load(note.job_id, preview_path)
    wanted = note.job_id in STATE.import_requested or (
        record.submitted_here and not any(p.job_id == note.job_id and p.object_name
                                          for p in STATE.plans.values())
    )
    in_compare = compare_jobs.wants_result(note.job_id, record.request_key)
    if in_compare is not None and note.job_id not in STATE.import_requested:
        wanted = in_compare  # a compare's result lands in its row, if the row is in this file
    if not wanted:
        return
    STATE.import_requested.discard(note.job_id)
    try:
        name = import_job(note.job_id)
    except (ProtocolError, RuntimeError) as error:
        info = error.info if isinstance(error, ProtocolError) else client_error(
            ErrorCode.GEOMETRY_FAILED, f"Blender could not import {path.name}: {error}")
        fail_plan(note.job_id, info)
        set_report("ERROR", info.message, info.hint or "")
        return
    if push_undo:
        push_undo_step(f"Dream CAD: import {name}")
    set_report("INFO", f"Imported {name}.")
    request_splats(note.job_id)


def request_splats(job_id: str) -> None:
    """Fetch the job's Gaussian splat file, if it has one and the preferences want it."""
    record = job_record(job_id)
    names = {entry.name for entry in record.manifest.extra_files} if record.manifest else set()
    if GAUSSIANS_FILE in names and preferences().import_gaussians:
        require_session().fetch_file(job_id, GAUSSIANS_FILE)


def on_extra_file(note: ExtraFileReady, push_undo: bool) -> None:
    """Save an extra file beside the asset; import the splats onto the job's mesh object."""
    asset = STATE.result_files.get(note.job_id)
    folder = asset.parent if asset else output_directory(preferences())
    stem = asset.stem if asset else note.job_id[:8]
    path = folder / f"{stem}.{note.name}"
    path.write_bytes(note.data)
    if note.name != GAUSSIANS_FILE:
        return
    record = job_record(note.job_id)
    entry = next(e for e in record.manifest.extra_files if e.name == note.name)
    mesh = _asset_object(note.job_id)
    try:
        cloud = splat_import.import_splats(path, mesh.name if mesh else display_name(record),
                                           entry.to_asset, mesh)  # fmt: skip
    except ValueError as error:
        set_report("WARNING", f"The Gaussians of {record.name or note.job_id} were not "
                   f"imported: {error}", f"The file is at {path}.")  # fmt: skip
        return
    if push_undo:
        push_undo_step(f"Dream CAD: import {cloud.name}")
    set_report("INFO", f"Imported {cloud.name} ({len(cloud.data.vertices)} Gaussians).")


def _asset_object(job_id: str) -> bpy.types.Object | None:
    """The mesh object imported for ``job_id`` in this file, if any."""
    plan = next((p for p in STATE.plans.values() if p.job_id == job_id and p.object_name), None)
    if plan is not None and plan.object_name in bpy.data.objects:
        return bpy.data.objects[plan.object_name]
    key = f"{importer.PROPERTY_PREFIX}job_id"
    return next((obj for obj in bpy.data.objects if obj.get(key) == job_id), None)


def push_undo_step(message: str) -> None:
    """Make an import from the timer one undo step, as an operator's would be.

    Timers run with the first window in context, so the poll passes in the UI; it is checked
    anyway so that a context without a screen costs the undo step, not the import.
    """
    if bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message=message)
    else:
        log.warning("no undo step for %r: ed.undo_push cannot run in this context", message)


def import_job(job_id: str, placement: importer.Placement | None = None) -> str:
    """Import a job's result file and return the new object's name."""
    record = job_record(job_id)
    path = STATE.result_files.get(job_id)
    if path is None or not path.is_file():
        raise ProtocolError(ErrorCode.RESULT_EXPIRED,
                            f"the result of {record.name!r} is not here yet",
                            hint="Import it from the queue; the add-on fetches it first.")
    plan = plan_for(job_id)
    if placement is None:
        placement = plan.placement if plan else importer.Placement(
            location=tuple(bpy.context.scene.cursor.location)
        )
    session = STATE.session
    hello_version = session.hello.backend_version if session and session.hello else ""
    provenance = importer.Provenance(
        prompt=record.prompt,
        model=record.model,
        seed=record.seed,
        job_id=record.job_id,
        backend_version=(record.manifest.backend_version if record.manifest else "")
        or hello_version,
        settings=record.settings,
        inputs=plan.inputs if plan else {},
    )
    if plan is not None and plan.mesh_target is not None:
        obj = mesh_results.import_onto(path, plan.mesh_target, provenance, record.task)
    else:
        obj = importer.import_glb(path, display_name(record), placement, provenance)
        key = parse_key(record.request_key)
        if key is not None and compare_jobs.wants_result(job_id, record.request_key):
            compare_row.land(obj, CompareEntry(key, record))
            importer.select_only(obj)
    STATE.offered.discard(job_id)
    if plan is not None:
        plan.object_name = obj.name
    STATE.rows_dirty = True
    return obj.name


def display_name(record: JobRecord) -> str:
    """The object name for a job: its prompt, else its image file's name."""
    plan = plan_for(record.job_id)
    image = Path(plan.inputs.get("image", "")).stem if plan else ""
    return importer.object_name(record.prompt, image or record.name or "Dream CAD Asset")


def request_import(job_id: str) -> str | None:
    """Import now if the result is here; otherwise fetch it and import when it arrives."""
    if job_id in STATE.result_files and STATE.result_files[job_id].is_file():
        return import_job(job_id)
    require_session().fetch(job_id)
    STATE.import_requested.add(job_id)
    return None


def offer_finished(job_ids: tuple[str, ...]) -> None:
    """Offer the finished results (listed by the backend) that are not in this .blend."""
    session = STATE.session
    if session is None:
        return
    present = importer.imported_job_ids()
    finished = {j for j in job_ids if session.jobs[j].state == "succeeded"}
    STATE.offered = {j for j in finished - present if not session.jobs[j].submitted_here}
    if STATE.offered:
        set_report("INFO", f"{len(STATE.offered)} finished results are not in this file yet.",
                   "Import them from the Dream CAD queue.")

