"""One function per request type: check, act through the queue, build the reply.

Handlers run on the server thread and never do GPU work: a submit is checked (model, task,
images, parameters) and queued; the workers do the rest. Each returns the reply message, or
raises ProtocolError, which the server turns into an ``error_reply``. A job is only shown to or
changed by its owner or an operator (ownership.py); a repeated submit (same ``request_key``, or
the same ``msg_id`` sent again) is answered with the job the first one made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from backend import __version__
from backend.jobs import result_files
from backend.jobs.admission import admit
from backend.jobs.queue import JobQueue
from backend.jobs.sources import source_raw_path
from backend.jobs.store import JobRecord
from backend.model_shelf import recommended
from backend.models.registry import ModelRegistry
from backend.ownership import LOCAL_USER, Caller
from backend.shelf_handlers import SHELF_HANDLERS
from backend.telemetry import gpu_info
from shared_protocol.codec import from_wire
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import PROTOCOL_VERSION, Limits
from shared_protocol.messages import (
    FINISHED_STATES,
    CancelReply,
    CancelRequest,
    DeleteReply,
    DeleteRequest,
    Error,
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    JobInfo,
    ListJobsReply,
    ListJobsRequest,
    Manifest,
    Message,
    ModelInfo,
    PingReply,
    PingRequest,
    Progress,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    WorkerHealth,
)

if TYPE_CHECKING:
    from backend.model_shelf import ModelShelf

T = TypeVar("T")


@dataclass
class HandlerContext:
    """What a handler may touch; ``subscribe`` attaches the requesting client to a job's events.

    ``caller`` is who sent the request, ``msg_id`` its id; ``instance_id`` names this run of the
    backend; ``workers`` and ``disk_free_mb`` report health for ping.
    """

    queue: JobQueue
    registry: ModelRegistry
    limits: Limits
    subscribe: Callable[[str], None]
    caller: Caller = LOCAL_USER
    msg_id: str = ""
    instance_id: str = ""
    workers: Callable[[], tuple[WorkerHealth, ...]] = field(default=lambda: ())
    disk_free_mb: Callable[[], float | None] = field(default=lambda: None)
    shelf: ModelShelf | None = None  # model states, downloads, load/release (shelf_handlers.py)


def model_infos(registry: ModelRegistry) -> tuple[ModelInfo, ...]:
    """Every installed model, marked unavailable when its weights are missing or too big."""
    gpus = gpu_info()
    largest_mb = max((g.memory_total_mb for g in gpus), default=None)
    infos = []
    for model_id in registry.ids():
        adapter = registry.create(model_id)
        fits = largest_mb is None or adapter.vram_mb <= largest_mb
        reason = (
            "" if fits else f"needs {adapter.vram_mb} MB of VRAM; the largest GPU has {largest_mb}"
        )
        infos.append(adapter.info(fits_gpu=fits, reason=reason))
    return tuple(infos)


def hello(ctx: HandlerContext, message: HelloRequest) -> HelloReply:
    gpus = gpu_info()
    models = model_infos(ctx.registry)
    states = ctx.shelf.states() if ctx.shelf else ()
    loaded = [s.model for s in states if s.state == "loaded"]
    return HelloReply(
        backend_version=__version__,
        protocol_version=PROTOCOL_VERSION,
        gpus=gpus,
        models=models,
        max_frame_bytes=ctx.limits.max_frame_bytes,
        max_frames=ctx.limits.max_frames,
        max_prompt_chars=ctx.limits.max_prompt_chars,
        instance_id=ctx.instance_id,
        model_states=states,
        recommended=recommended(models, gpus, loaded),
    )


def submit(ctx: HandlerContext, message: SubmitRequest) -> SubmitReply:
    existing = ctx.queue.find_submitted(ctx.caller.owner, message.request_key, ctx.msg_id)
    if existing is not None:
        return _submitted_before(ctx, existing, message.watch)
    admission = admit(ctx.registry, message)
    if message.source_job is not None:
        source_raw_path(ctx.queue.store, message.source_job, ctx.caller.may_access)
    record, position = ctx.queue.submit(
        admission.spec,
        admission.encoded_images,
        priority=message.priority,
        owner=ctx.caller.owner,
        request_key=message.request_key,
        submit_msg_id=ctx.msg_id,
        encoded_mesh=admission.encoded_mesh,
    )
    if message.watch:
        ctx.subscribe(record.job_id)
    return SubmitReply(job_id=record.job_id, queue_position=position, seed=admission.spec.seed)


def _submitted_before(ctx: HandlerContext, record: JobRecord, watch: bool) -> SubmitReply:
    """A repeated submit: the first one's job; a watcher of a finished one gets its end again."""
    if watch:
        ctx.subscribe(record.job_id)
        if record.state in FINISHED_STATES:
            ctx.queue.republish_end(record)
    position = ctx.queue.store.queue_position(record.job_id) or 0
    return SubmitReply(job_id=record.job_id, queue_position=position, seed=record.seed)


def cancel(ctx: HandlerContext, message: CancelRequest) -> CancelReply:
    _require(ctx, message.job_id)
    return CancelReply(job_id=message.job_id, state=ctx.queue.cancel(message.job_id))


def status(ctx: HandlerContext, message: StatusRequest) -> StatusReply:
    record = _require(ctx, message.job_id)
    if message.watch and record.state not in FINISHED_STATES:
        ctx.subscribe(record.job_id)
    return StatusReply(job=job_info(ctx.queue, record))


def list_jobs(ctx: HandlerContext, message: ListJobsRequest) -> ListJobsReply:
    owner = None if ctx.caller.operator else ctx.caller.owner
    records = ctx.queue.store.list(message.states, message.limit, owner=owner)
    return ListJobsReply(jobs=tuple(job_info(ctx.queue, r) for r in records))


def fetch(ctx: HandlerContext, message: FetchRequest) -> FetchReply:
    record = _require(ctx, message.job_id)
    if record.state != "succeeded" or record.manifest is None:
        raise ProtocolError(
            ErrorCode.JOB_NOT_FINISHED,
            f"job {record.job_id} is {record.state}; only succeeded jobs have a result",
            field="body.job_id",
        )
    manifest = _stored(Manifest, record.manifest)
    path = ctx.queue.result_path(record)
    if message.file:
        result_files.find(manifest, message.file)
        path = result_files.file_path(path.parent, message.file)
    if not path.is_file():
        raise ProtocolError(ErrorCode.RESULT_EXPIRED, f"the result file of {record.job_id} is gone")
    data, size = result_files.read_slice(path, message.offset, message.max_bytes)
    preview = path.with_name("preview.png")
    return FetchReply(
        job_id=record.job_id,
        manifest=manifest,
        asset=data,
        preview=preview.read_bytes() if not message.file and preview.is_file() else None,
        file=message.file,
        offset=message.offset,
        total_bytes=size,
    )


def delete(ctx: HandlerContext, message: DeleteRequest) -> DeleteReply:
    _require(ctx, message.job_id)
    ctx.queue.delete(message.job_id)
    return DeleteReply(job_id=message.job_id)


def ping(ctx: HandlerContext, message: PingRequest) -> PingReply:
    return PingReply(
        server_time=time.time(),
        gpus=gpu_info(),
        queued_jobs=ctx.queue.store.count("queued"),
        running_jobs=ctx.queue.store.count("running"),
        instance_id=ctx.instance_id,
        workers=ctx.workers(),
        disk_free_mb=_rounded(ctx.disk_free_mb()),
        model_states=ctx.shelf.states() if ctx.shelf else (),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


HANDLERS: dict[type[Message], Callable[[HandlerContext, Message], Message]] = {
    HelloRequest: hello,
    SubmitRequest: submit,
    CancelRequest: cancel,
    StatusRequest: status,
    ListJobsRequest: list_jobs,
    FetchRequest: fetch,
    DeleteRequest: delete,
    PingRequest: ping,
    **SHELF_HANDLERS,
}  # type: ignore[dict-item]


def job_info(queue: JobQueue, record: JobRecord) -> JobInfo:
    return JobInfo(
        job_id=record.job_id,
        state=record.state,  # type: ignore[arg-type]
        model=record.model,
        task=record.task,  # type: ignore[arg-type]
        prompt=record.prompt,
        name=record.name,
        priority=record.priority,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        queue_position=queue.store.queue_position(record.job_id),
        attempts=record.attempts,
        progress=_stored(Progress, record.progress),
        error=_stored(Error, record.error),
        manifest=_stored(Manifest, record.manifest),
        source_job=(record.request or {}).get("source_job"),
        request_key=record.request_key,
    )


def _stored(cls: type[T], data: dict | None) -> T | None:
    """A record's JSON column rebuilt through the protocol codec (checked like the wire)."""
    return None if data is None else from_wire(cls, data, [], cls.__name__.lower(), set())


def _require(ctx: HandlerContext, job_id: str) -> JobRecord:
    """The job, if it exists and the caller may see it (UNKNOWN_JOB / FORBIDDEN otherwise)."""
    record = ctx.queue.store.get(job_id)
    if record is None:
        raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no job {job_id!r}", field="body.job_id")
    return ctx.caller.require_access(record)
