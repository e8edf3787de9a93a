"""Typed errors of the Dream CAD protocol: stable codes, wire form and default hints.

Every failure that crosses the wire is an :class:`ErrorInfo` (code, message, field, hint). Code
strings are part of the protocol and never change meaning; clients switch on them, so a new
failure gets a new code rather than reusing a near one. :class:`ProtocolError` is the exception
that carries an ``ErrorInfo`` through Python code on either side, kept apart from ``ValueError``
so a bad message is never mistaken for a bug.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorCode(enum.StrEnum):
    """Stable error codes. The value is what travels on the wire."""

    # Framing and parsing: the message itself is wrong.
    PROTOCOL_VERSION_MISMATCH = "protocol_version_mismatch"
    MALFORMED_FRAMES = "malformed_frames"
    BAD_JSON = "bad_json"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    OUT_OF_RANGE = "out_of_range"
    FRAME_TOO_LARGE = "frame_too_large"
    TOO_MANY_FRAMES = "too_many_frames"
    PROMPT_TOO_LONG = "prompt_too_long"
    # Request semantics: well-formed, but not something the backend can do.
    UNKNOWN_MODEL = "unknown_model"
    UNSUPPORTED_TASK = "unsupported_task"
    INVALID_IMAGE = "invalid_image"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_MESH = "invalid_mesh"  # not a readable GLB, or no triangles in it
    MESH_TOO_LARGE = "mesh_too_large"  # more triangles than MAX_MESH_FACES
    SOURCE_UNAVAILABLE = "source_unavailable"  # a source_job without a kept raw output
    UNKNOWN_JOB = "unknown_job"
    FORBIDDEN = "forbidden"
    JOB_NOT_FINISHED = "job_not_finished"
    JOB_FINISHED = "job_finished"
    RESULT_EXPIRED = "result_expired"
    QUEUE_FULL = "queue_full"
    CLIENT_QUEUE_FULL = "client_queue_full"  # this client's share of the queue is used up
    UNKNOWN_DOWNLOAD = "unknown_download"
    # Running a job.
    WEIGHTS_MISSING = "weights_missing"
    MODEL_UNAVAILABLE = "model_unavailable"  # weights present, but it cannot run here
    DISK_FULL = "disk_full"
    CHECKSUM_MISMATCH = "checksum_mismatch"  # a downloaded file is not the pinned one
    CUDA_OUT_OF_MEMORY = "cuda_out_of_memory"
    MODEL_FAILED = "model_failed"
    GEOMETRY_FAILED = "geometry_failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    INTERNAL_ERROR = "internal_error"
    # Client side (never sent by the server, but reported in the same shape).
    TIMEOUT = "timeout"
    BACKEND_UNREACHABLE = "backend_unreachable"


DEFAULT_HINTS: dict[ErrorCode, str] = {
    ErrorCode.PROTOCOL_VERSION_MISMATCH: "Client and backend speak different protocol versions: "
    "upgrade the older of the two (the Blender add-on or the dreamcad-backend package).",
    ErrorCode.MALFORMED_FRAMES: "Send [protocol tag, JSON header, binary frames...] as one "
    "multipart message; see docs/protocol.md.",
    ErrorCode.BAD_JSON: "The header frame must be UTF-8 JSON holding one object.",
    ErrorCode.UNKNOWN_MESSAGE_TYPE: "Use one of the message types listed in docs/protocol.md.",
    ErrorCode.MISSING_FIELD: "Add the named field to the message body.",
    ErrorCode.INVALID_FIELD: "Give the named field a value of the documented type.",
    ErrorCode.OUT_OF_RANGE: "Choose a value inside the documented range.",
    ErrorCode.FRAME_TOO_LARGE: "Send a smaller image, or raise the backend's --max-frame-mb.",
    ErrorCode.TOO_MANY_FRAMES: "Send fewer images in one request.",
    ErrorCode.PROMPT_TOO_LONG: "Shorten the prompt.",
    ErrorCode.UNKNOWN_MODEL: "Run `dreamcad-backend models` to list installed models.",
    ErrorCode.UNSUPPORTED_TASK: "Pick a model that supports this task; `dreamcad-backend models` "
    "lists each model's tasks.",
    ErrorCode.INVALID_IMAGE: "Send a PNG, JPEG or WebP file that opens in an image viewer.",
    ErrorCode.INVALID_PARAMETER: "Check the model's parameters and their ranges: "
    "`dreamcad-backend models --json` lists them.",
    ErrorCode.INVALID_MESH: "Send the mesh as one binary glTF (.glb) with at least one "
    "triangle; Blender: File > Export > glTF 2.0, format glTF Binary.",
    ErrorCode.MESH_TOO_LARGE: "Decimate the mesh first (Blender: Decimate modifier) or send "
    "fewer objects at once.",
    ErrorCode.SOURCE_UNAVAILABLE: "That job kept no raw output (it did not succeed, or it was "
    "made by a backend older than protocol 3): send the mesh itself instead.",
    ErrorCode.UNKNOWN_JOB: "List jobs with `dreamcad-backend jobs list`; finished jobs past "
    "retention are deleted.",
    ErrorCode.FORBIDDEN: "The job belongs to another client: only its owner, or a client "
    "holding an operator key (`dreamcad-backend serve --operator-key`), can see or change it.",
    ErrorCode.JOB_NOT_FINISHED: "Wait until it has finished; `dreamcad-backend status JOB_ID` "
    "shows where it is.",
    ErrorCode.JOB_FINISHED: "Only a queued or running job can be cancelled; "
    "`dreamcad-backend jobs list` shows each job's state.",
    ErrorCode.RESULT_EXPIRED: "The result was removed by retention; submit the job again.",
    ErrorCode.QUEUE_FULL: "Wait for queued jobs to finish or cancel some.",
    ErrorCode.CLIENT_QUEUE_FULL: "You have as many jobs queued as the backend allows one client "
    "(`serve --max-queued-per-client`): wait for some to start, or cancel some.",
    ErrorCode.WEIGHTS_MISSING: "Run `dreamcad-backend download MODEL` on the backend machine.",
    ErrorCode.UNKNOWN_DOWNLOAD: "This backend has no such download: list its downloads, or "
    "download the model again.",
    ErrorCode.CHECKSUM_MISMATCH: "The file was deleted; download again. If it happens again "
    "the hub's file changed: update Dream CAD, whose pinned checksums name the right file.",
    ErrorCode.MODEL_UNAVAILABLE: "Pick another model: this one cannot run on the backend's "
    "hardware (`dreamcad-backend models` says why).",
    ErrorCode.DISK_FULL: "Free disk space on the backend machine (deleting old jobs works even "
    "on a full disk), or point HF_HOME / --data-dir at a larger disk.",
    ErrorCode.CUDA_OUT_OF_MEMORY: "Lower the resolution or texture size, close other GPU "
    "programs, or pick a smaller model.",
    ErrorCode.MODEL_FAILED: "See the backend log for the traceback; try another seed or model.",
    ErrorCode.GEOMETRY_FAILED: "Try another target face count, or report the input mesh.",
    ErrorCode.CANCELLED: "The job was cancelled on request.",
    ErrorCode.INTERRUPTED: "The backend stopped twice while running this job; check its log "
    "(out of memory?) and submit again.",
    ErrorCode.INTERNAL_ERROR: "This is a bug in the backend; please report it with its log.",
    ErrorCode.TIMEOUT: "Is the backend running and reachable? Try `dreamcad-backend ping`.",
    ErrorCode.BACKEND_UNREACHABLE: "Start it with `dreamcad-backend serve`, or check the address.",
}


@dataclass(frozen=True)
class ErrorInfo:
    """A structured error as it travels: ``field`` is a dotted path such as ``body.seed``."""

    code: str
    message: str
    field: str | None = None
    hint: str | None = None

    def describe(self) -> str:
        """One line for logs and CLI output: ``code: message (field) - hint``."""
        text = f"{self.code}: {self.message}"
        if self.field:
            text += f" (field {self.field})"
        if self.hint:
            text += f" - {self.hint}"
        return text


class ProtocolError(Exception):
    """An error with a stable code; raised anywhere, turned into an error reply at the edge."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.hint = hint if hint is not None else DEFAULT_HINTS.get(code)

    @property
    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code.value, message=str(self), field=self.field, hint=self.hint)

    def __str__(self) -> str:
        return self.args[0] if self.args else self.code.value
