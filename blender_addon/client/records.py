"""What the add-on's client knows about the backend and its jobs, as plain data (no bpy).

``JobRecord`` is the live view of one job; the notification dataclasses are what
``Session.poll`` hands the runtime each timer tick, so the runtime reacts to changes instead of
diffing state. ``describe_error`` turns any structured error into the words the panel shows
(the message with the field at fault, and the hint); ``client_error`` makes one for a failure
seen here. An error received from the backend becomes a ProtocolError through
``shared_protocol.client.error_from_wire``, which keeps its field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from shared_protocol.errors import ErrorCode, ErrorInfo, ProtocolError
from shared_protocol.messages import FINISHED_STATES, HelloReply, Manifest, Progress, SubmitRequest


class ConnectionState(enum.StrEnum):
    """Where the session stands with its backend."""

    DISCONNECTED = "disconnected"  # never connected, or closed on purpose
    CONNECTING = "connecting"  # hello sent, no reply yet
    CONNECTED = "connected"
    LOST = "lost"  # the backend stopped answering (down, killed, unreachable)
    INCOMPATIBLE = "incompatible"  # it answers, but in another protocol version


@dataclass
class JobRecord:
    """One job as this client sees it. ``settings`` is what a re-run needs (JSON-ready)."""

    job_id: str
    name: str
    model: str
    prompt: str
    task: str
    seed: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    state: str = "queued"
    progress: Progress | None = None
    error: ErrorInfo | None = None
    manifest: Manifest | None = None
    submitted_here: bool = False  # submitted in this Blender session: import on arrival
    result_received: bool = False
    queue_position: int | None = None
    submit_msg_id: str = ""  # the submit_request's msg_id, which the runtime keys its plans by
    request_key: str | None = None  # the submit's own key (a compare's jobs are found by it)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def percent(self) -> float:
        if self.state == "succeeded":
            return 100.0
        return 100.0 * self.progress.fraction if self.progress else 0.0


def settings_of(request: SubmitRequest) -> dict[str, Any]:
    """The request's generation settings as JSON-ready data (stored on imported objects)."""
    return {
        "task": request.task,
        "target_faces": request.target_faces,
        "texture_size": request.texture_size,
        "pbr": request.pbr,
        "output_format": request.output_format,
        "parameters": dict(request.parameters),
        "keep_inner": request.keep_inner,
        "lods": request.lods,
        "quads": request.quads,
        "keep_uvs": request.keep_uvs,
        **({"source_job": request.source_job} if request.source_job else {}),
        **({"mesh": request.mesh.name} if request.mesh is not None else {}),
    }


@dataclass(frozen=True)
class Connected:
    hello: HelloReply


@dataclass(frozen=True)
class Disconnected:
    """The connection failed or was lost; ``error`` says why and what to do."""

    state: ConnectionState
    error: ErrorInfo


@dataclass(frozen=True)
class JobChanged:
    job_id: str


@dataclass(frozen=True)
class ResultReady:
    """A finished asset arrived (pushed result_event or a fetch_reply)."""

    job_id: str
    manifest: Manifest
    asset: bytes
    preview: bytes | None


@dataclass(frozen=True)
class ExtraFileReady:
    """One of a result's extra files (a manifest ``extra_files`` entry) arrived whole."""

    job_id: str
    name: str
    data: bytes


@dataclass(frozen=True)
class JobEnded:
    """A job ended without a result (failed or cancelled)."""

    job_id: str
    state: str
    error: ErrorInfo


@dataclass(frozen=True)
class RequestFailed:
    """A request was refused; ``action`` is the request's kind (submit, cancel, fetch...)."""

    action: str
    error: ErrorInfo
    job_id: str | None = None
    msg_id: str = ""  # the refused request's msg_id


@dataclass(frozen=True)
class JobDeleted:
    """The backend deleted the job (its record is gone; what was imported stays)."""

    job_id: str


@dataclass(frozen=True)
class JobsListed:
    """The backend's job list arrived (after connecting): finished jobs can be offered."""

    job_ids: tuple[str, ...]


Notification = Connected | Disconnected | JobChanged | ResultReady | JobEnded | RequestFailed
Notification = Notification | JobsListed | JobDeleted | ExtraFileReady


def client_error(code: ErrorCode, message: str, hint: str | None = None) -> ErrorInfo:
    """An ErrorInfo for a failure seen on the client side, with the code's default hint."""
    return ProtocolError(code, message, hint=hint).info


def describe_error(error: ErrorInfo) -> tuple[str, str]:
    """(message, hint) for the panel; the hint is empty when there is none."""
    message = error.message
    if error.field:
        message += f" ({error.field})"
    return message, error.hint or ""
