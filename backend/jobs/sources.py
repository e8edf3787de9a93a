"""``source_job``: may this caller optimize that job's raw output again, and where is it.

A re-optimize reads a finished job's kept raw output (raw_store.py) instead of running a model.
The checks, each a coded error naming ``body.source_job``: the job exists (``unknown_job``),
belongs to the caller or the caller is an operator (``forbidden``), has succeeded
(``job_not_finished``) and still has its raw file (``source_unavailable``: jobs from before
protocol 3 have none). The worker looks again when the job runs, since a delete may come between.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from backend.geometry.mesh_input import read_glb
from backend.geometry.raw_asset import RawAsset
from backend.geometry.raw_store import RAW_FILE, load_raw
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobRecord, JobStore
from shared_protocol.errors import ErrorCode, ProtocolError

FIELD = "body.source_job"


def source_raw_path(
    store: JobStore, source_job: str, may_access: Callable[[JobRecord], bool] | None = None
) -> Path:
    """The raw output file of ``source_job``; ``may_access`` is the caller's ownership check
    (``Caller.may_access``; None: none, as for the local CLI)."""
    record = store.get(source_job)
    if record is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_JOB, f"no job {source_job!r} to optimize again", field=FIELD
        )
    if may_access is not None and not may_access(record):
        raise ProtocolError(
            ErrorCode.FORBIDDEN, f"job {source_job} belongs to another client", field=FIELD
        )
    if record.state != "succeeded":
        raise ProtocolError(
            ErrorCode.JOB_NOT_FINISHED,
            f"job {source_job} is {record.state}; only a succeeded job can be optimized again",
            field=FIELD,
        )
    path = store.job_dir(source_job) / RAW_FILE
    if not path.is_file():
        raise ProtocolError(
            ErrorCode.SOURCE_UNAVAILABLE,
            f"job {source_job} kept no raw output to optimize again",
            field=FIELD,
        )
    return path


def job_mesh(store: JobStore, job_id: str, spec: JobSpec) -> RawAsset | None:
    """The mesh a job works on: its sent GLB, or its source job's raw output (None: neither).

    A source job's raw file is also linked into this job's folder, so the result can in turn be
    optimized again, even after the source job is deleted (a hard link costs no space).
    """
    if spec.mesh_file is not None:
        data = (store.job_dir(job_id) / "inputs" / spec.mesh_file).read_bytes()
        return read_glb(data, "mesh.data", spec.name)
    if spec.source_job is None:
        return None
    source = source_raw_path(store, spec.source_job)  # deleted since admission: coded error
    kept = store.job_dir(job_id) / RAW_FILE
    if not kept.exists():
        try:
            os.link(source, kept)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(source, kept)
    return load_raw(kept)
