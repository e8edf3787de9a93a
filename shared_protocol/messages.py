"""Every message of the Dream CAD protocol as a frozen dataclass, and the registry of their types.

Naming follows ``<action>_request`` / ``<action>_reply`` / ``<noun>_event``. Requests go client ->
backend; each gets exactly one reply (its own ``*_reply`` or an ``error_reply``) whose header
``parent_id`` is the request's ``msg_id``. Events are pushed by the backend about a job; their
``parent_id`` is the ``msg_id`` of the request that subscribed (the submit, or a watching status).
Fields typed ``bytes`` travel as binary frames (see codec.py). Static limits (ranges) live here
in field metadata; limits an operator can change (frame size, prompt length) live in framing.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from shared_protocol.codec import bounded, bounded_text
from shared_protocol.errors import ErrorInfo as Error  # the wire form of every error
from shared_protocol.limits import (  # noqa: F401  (re-exported: the names' old home)
    DEFAULT_FACES,
    DEFAULT_FORMAT,
    DEFAULT_TEXTURE_SIZE,
    MAX_FACES,
    MAX_MESH_FACES,
    MIN_FACES,
    TEXTURE_SIZES,
)

# text / image / multi_image make a new asset; texture paints a given mesh (its geometry kept);
# optimize makes a given mesh (or a finished job's raw output) game-ready, with no model run.
Task = Literal["text", "image", "multi_image", "texture", "optimize"]
MESH_TASKS: frozenset[str] = frozenset({"texture", "optimize"})
GENERATE_TASKS: tuple[str, ...] = ("text", "image", "multi_image")  # the others make new assets
OutputFormat = Literal["glb", "obj", "ply", "stl"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ViewName = Literal["front", "left", "back", "right", "top", "bottom"]
ParameterKind = Literal["int", "float", "bool", "choice", "str"]
# What a model is on one device: see docs/protocol.md "The model shelf".
ModelStateName = Literal["missing", "downloading", "present", "loading", "loaded", "error"]
DownloadState = Literal["queued", "running", "succeeded", "failed", "cancelled"]

FINISHED_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
MAX_SEED = 2**32 - 1  # seeds are 32-bit: every model's generator takes them
MAX_NAME_CHARS = 200
MAX_REQUEST_KEY_CHARS = 128
MAX_FILE_NAME_CHARS = 64
MAX_JOB_ID_CHARS = 64
MAX_LODS = 5  # LOD0 plus up to five coarser levels, each about half the faces of the one before
MESH_MEDIA_TYPE = "model/gltf-binary"
# The built-in model that runs task ``optimize``: the geometry pipeline alone, on the CPU.
OPTIMIZE_MODEL = "mesh-optimize"


@dataclass(frozen=True)
class Message:
    """Base of all messages; ``TYPE`` is the wire name in the header's ``type``."""

    TYPE: ClassVar[str] = ""


# --- Shared records -------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mb: int
    memory_free_mb: int
    utilization_percent: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None


@dataclass(frozen=True)
class WorkerHealth:
    """One worker thread (one per device) as the backend's supervisor sees it.

    ``alive`` is false only between a worker's death and its restart; ``restarts`` counts how
    often the supervisor has had to start it again, ``last_error`` says why it last died.
    """

    device: str
    alive: bool
    job_id: str | None = None
    restarts: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class ParameterSchema:
    """One model parameter, enough for a client to draw a widget and check a value."""

    name: str
    kind: ParameterKind
    default: Any
    label: str = ""
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    tasks: tuple[Task, ...]
    parameters: tuple[ParameterSchema, ...]
    vram_mb: int
    license: str
    license_url: str = ""
    description: str = ""
    weights_repo: str = ""
    weights_present: bool = True
    max_images: int = 1  # how many input images (views) the model takes
    available: bool = True
    unavailable_reason: str = ""
    download_bytes: int = 0  # what `download` fetches (declared sizes; 0: unknown)
    license_gated: bool = False  # the licence must be accepted on the hub before downloading
    components: tuple[str, ...] = ()  # optional parts a download may add (e.g. "paint")


@dataclass(frozen=True)
class ModelState:
    """One model on one device (``device`` "" for states that are not per device).

    ``missing`` no weights here; ``downloading`` a download is running (``download_id``,
    ``fraction``); ``present`` weights here, not loaded; ``loading``; ``loaded`` (``vram_mb`` it
    holds, when known); ``error`` the last download or load failed (``error``).
    """

    model: str
    state: ModelStateName
    device: str = ""
    vram_mb: float | None = None
    error: Error | None = None
    download_id: str | None = None
    fraction: float = bounded(0.0, 0.0, 1.0)


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download is: bytes and files done, speed (bytes/s) and time left."""

    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    current_file: str = ""
    fraction: float = bounded(0.0, 0.0, 1.0)


@dataclass(frozen=True)
class DownloadInfo:
    """A download job as the backend stores it (it survives a restart and resumes)."""

    download_id: str
    model: str
    components: tuple[str, ...]
    state: DownloadState
    created_at: float
    progress: DownloadProgress = field(default_factory=DownloadProgress)
    error: Error | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class ImageInput:
    """An encoded image (PNG/JPEG/WebP) and, for multi-view models, which view it shows."""

    data: bytes
    media_type: str = "image/png"
    view: ViewName = "front"


@dataclass(frozen=True)
class MeshInput:
    """A mesh the artist brings: one binary glTF (GLB) with its materials and textures embedded.

    ``name`` is the object's name, used for the result's node names (``<name>_LOD0``..).
    """

    data: bytes
    media_type: str = MESH_MEDIA_TYPE
    name: str = bounded_text("", MAX_NAME_CHARS)


@dataclass(frozen=True)
class Progress:
    stage: str
    step: int = 0
    total: int = 0
    fraction: float = bounded(0.0, 0.0, 1.0)
    eta_s: float | None = None
    message: str = ""


@dataclass(frozen=True)
class ResultFile:
    """A further file of a finished job, beside its asset (e.g. ``gaussians.ply``).

    ``to_asset`` is the 4x4 row-major affine map from the file's coordinates to the asset's
    (16 numbers; empty: the file has no coordinates, or they are the asset's own), so a client
    can place the file's content exactly on the asset.
    """

    name: str
    media_type: str
    size_bytes: int
    to_asset: tuple[float, ...] = ()


@dataclass(frozen=True)
class LodInfo:
    """One level of a LOD chain: its node name (``<name>_LOD<i>``) and size."""

    name: str
    faces: int
    vertices: int


@dataclass(frozen=True)
class Manifest:
    """What a finished asset is: the numbers a client shows without opening the file."""

    format: OutputFormat
    faces: int
    vertices: int
    bbox_min: tuple[float, ...]
    bbox_max: tuple[float, ...]
    seed: int
    model: str
    up_axis: str = "+Y"
    units: str = "m"
    timings_s: dict[str, float] = field(default_factory=dict)
    peak_vram_mb: float | None = None
    warnings: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)
    backend_version: str = ""
    # Where it ran: the machine (a Ray node on a farm, the host name otherwise) and its device.
    node: str = ""
    device: str = ""
    extra_files: tuple[ResultFile, ...] = ()  # fetched one at a time: fetch_request's ``file``
    lods: tuple[LodInfo, ...] = ()  # LOD0 first; empty without a LOD chain


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: JobState
    model: str
    task: Task
    prompt: str
    name: str
    priority: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    queue_position: int | None = None
    attempts: int = 0
    progress: Progress | None = None
    error: Error | None = None
    manifest: Manifest | None = None
    source_job: str | None = None  # the job an optimize job re-optimized
    # The submit's own request_key: a client finds its jobs again by it (e.g. a compare's).
    request_key: str | None = None


# --- Requests and replies -------------------------------------------------------------------


@dataclass(frozen=True)
class HelloRequest(Message):
    TYPE: ClassVar[str] = "hello_request"
    client_name: str = ""
    client_version: str = ""


@dataclass(frozen=True)
class HelloReply(Message):
    """``instance_id`` is new each time the backend starts: a change means it restarted."""

    TYPE: ClassVar[str] = "hello_reply"
    backend_version: str
    protocol_version: int
    gpus: tuple[GpuInfo, ...]
    models: tuple[ModelInfo, ...]
    max_frame_bytes: int
    max_frames: int
    max_prompt_chars: int
    instance_id: str = ""
    model_states: tuple[ModelState, ...] = ()
    # Models whose weights are here and whose VRAM need fits a GPU's free memory now, best
    # (largest that fits) first; on a CPU-only backend every present model.
    recommended: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubmitRequest(Message):
    """Ask for one asset. ``parameters`` are the model's own, checked against its schema.

    ``request_key`` (the client's choice) makes the submit idempotent: a second submit with the
    same key from the same owner is answered with the job the first one made.
    """

    TYPE: ClassVar[str] = "submit_request"
    model: str
    task: Task
    prompt: str = ""
    images: tuple[ImageInput, ...] = ()
    seed: int | None = bounded(None, 0, MAX_SEED)
    target_faces: int = bounded(DEFAULT_FACES, MIN_FACES, MAX_FACES)
    texture_size: int = bounded(DEFAULT_TEXTURE_SIZE, TEXTURE_SIZES[0], TEXTURE_SIZES[-1])
    pbr: bool = True
    output_format: OutputFormat = DEFAULT_FORMAT
    parameters: dict[str, Any] = field(default_factory=dict)
    priority: int = bounded(0, -100, 100)
    name: str = bounded_text("", MAX_NAME_CHARS)
    watch: bool = True
    request_key: str | None = bounded_text(None, MAX_REQUEST_KEY_CHARS)
    # Mesh in (protocol 3): ``mesh`` for tasks texture and optimize, or, for optimize only,
    # ``source_job``: a finished job of the same owner whose kept raw output is optimized again.
    mesh: MeshInput | None = None
    source_job: str | None = bounded_text(None, MAX_JOB_ID_CHARS)
    # Game-ready options, applied to every job's geometry pipeline.
    keep_inner: bool = False
    lods: int = bounded(0, 0, MAX_LODS)
    quads: bool = False
    keep_uvs: bool = False


@dataclass(frozen=True)
class SubmitReply(Message):
    """The job was accepted and queued."""

    TYPE: ClassVar[str] = "submit_reply"
    job_id: str
    queue_position: int
    seed: int


@dataclass(frozen=True)
class CancelRequest(Message):
    TYPE: ClassVar[str] = "cancel_request"
    job_id: str


@dataclass(frozen=True)
class CancelReply(Message):
    """``state`` is the job's state after the request; a running job ends at its next step."""

    TYPE: ClassVar[str] = "cancel_reply"
    job_id: str
    state: JobState


@dataclass(frozen=True)
class StatusRequest(Message):
    """``watch`` subscribes this client to the job's events (a reconnecting client uses it)."""

    TYPE: ClassVar[str] = "status_request"
    job_id: str
    watch: bool = False


@dataclass(frozen=True)
class StatusReply(Message):
    TYPE: ClassVar[str] = "status_reply"
    job: JobInfo


@dataclass(frozen=True)
class ListJobsRequest(Message):
    TYPE: ClassVar[str] = "list_jobs_request"
    states: tuple[JobState, ...] = ()
    limit: int = bounded(100, 1, 10_000)


@dataclass(frozen=True)
class ListJobsReply(Message):
    TYPE: ClassVar[str] = "list_jobs_reply"
    jobs: tuple[JobInfo, ...]


@dataclass(frozen=True)
class FetchRequest(Message):
    """A finished job's asset, or (``file``) one of its manifest's ``extra_files``.

    ``offset`` and ``max_bytes`` (0: to the end) ask for a slice of the file, so a file larger
    than a frame may be fetched in parts.
    """

    TYPE: ClassVar[str] = "fetch_request"
    job_id: str
    file: str = bounded_text("", MAX_FILE_NAME_CHARS)
    offset: int = bounded(0, 0, None)
    max_bytes: int = bounded(0, 0, None)


@dataclass(frozen=True)
class FetchReply(Message):
    """``asset`` holds the asked file's bytes from ``offset`` (the preview comes with the main
    asset only); ``total_bytes`` is the whole file's size."""

    TYPE: ClassVar[str] = "fetch_reply"
    job_id: str
    manifest: Manifest
    asset: bytes
    preview: bytes | None = None
    file: str = ""
    offset: int = 0
    total_bytes: int = 0


@dataclass(frozen=True)
class DeleteRequest(Message):
    """Forget a finished job and delete its files (cancels it first if it is still live)."""

    TYPE: ClassVar[str] = "delete_request"
    job_id: str


@dataclass(frozen=True)
class DeleteReply(Message):
    TYPE: ClassVar[str] = "delete_reply"
    job_id: str


@dataclass(frozen=True)
class PingRequest(Message):
    TYPE: ClassVar[str] = "ping_request"


@dataclass(frozen=True)
class PingReply(Message):
    """The pong: backend clock, GPU telemetry, queue depth, worker health, free disk.

    ``instance_id`` is the one hello_reply gave; a different one means the backend restarted.
    ``disk_free_mb`` is the free space where results are written (None: unknown).
    """

    TYPE: ClassVar[str] = "ping_reply"
    server_time: float
    gpus: tuple[GpuInfo, ...] = ()
    queued_jobs: int = 0
    running_jobs: int = 0
    instance_id: str = ""
    workers: tuple[WorkerHealth, ...] = ()
    disk_free_mb: float | None = None
    model_states: tuple[ModelState, ...] = ()


@dataclass(frozen=True)
class DownloadRequest(Message):
    """Fetch a model's weights on the backend's machine, as a job (progress, cancel, resume).

    ``components`` adds optional parts (required ones always come); ``only_components`` skips
    the model's own weights. A model already downloading answers with that download's id.
    """

    TYPE: ClassVar[str] = "download_request"
    model: str
    components: tuple[str, ...] = ()
    only_components: bool = False
    watch: bool = True


@dataclass(frozen=True)
class DownloadReply(Message):
    TYPE: ClassVar[str] = "download_reply"
    download: DownloadInfo


@dataclass(frozen=True)
class DownloadStatusRequest(Message):
    """One download (``download_id``) or all of them (None); ``watch`` subscribes to live ones."""

    TYPE: ClassVar[str] = "download_status_request"
    download_id: str | None = None
    watch: bool = False


@dataclass(frozen=True)
class DownloadStatusReply(Message):
    TYPE: ClassVar[str] = "download_status_reply"
    downloads: tuple[DownloadInfo, ...]


@dataclass(frozen=True)
class DownloadCancelRequest(Message):
    """Stop a download; the files fetched so far are kept, so a new download resumes."""

    TYPE: ClassVar[str] = "download_cancel_request"
    download_id: str


@dataclass(frozen=True)
class DownloadCancelReply(Message):
    TYPE: ClassVar[str] = "download_cancel_reply"
    download_id: str
    state: DownloadState


@dataclass(frozen=True)
class LoadRequest(Message):
    """Load a model before generating (``device`` "": the first worker's device)."""

    TYPE: ClassVar[str] = "load_request"
    model: str
    device: str = ""


@dataclass(frozen=True)
class UnloadRequest(Message):
    """Release a model's memory (``device`` "": on every device)."""

    TYPE: ClassVar[str] = "unload_request"
    model: str
    device: str = ""


@dataclass(frozen=True)
class ModelStateReply(Message):
    """The answer to load and unload: the model's states now (loading happens in the worker;
    ping's ``model_states`` says when it is loaded)."""

    TYPE: ClassVar[str] = "model_state_reply"
    model: str
    states: tuple[ModelState, ...]


@dataclass(frozen=True)
class ErrorReply(Message):
    """The reply to any request that failed; ``parent_id`` names the request."""

    TYPE: ClassVar[str] = "error_reply"
    error: Error


# --- Events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressEvent(Message):
    TYPE: ClassVar[str] = "progress_event"
    job_id: str
    progress: Progress
    preview: bytes | None = None


@dataclass(frozen=True)
class ResultEvent(Message):
    TYPE: ClassVar[str] = "result_event"
    job_id: str
    manifest: Manifest
    asset: bytes
    preview: bytes | None = None


@dataclass(frozen=True)
class JobFailedEvent(Message):
    """A job ended without a result: ``state`` is ``failed`` or ``cancelled``."""

    TYPE: ClassVar[str] = "job_failed_event"
    job_id: str
    state: JobState
    error: Error


@dataclass(frozen=True)
class DownloadProgressEvent(Message):
    TYPE: ClassVar[str] = "download_progress_event"
    download_id: str
    model: str
    progress: DownloadProgress


@dataclass(frozen=True)
class DownloadFinishedEvent(Message):
    """A download ended: ``download.state`` is succeeded, failed (``download.error``) or
    cancelled."""

    TYPE: ClassVar[str] = "download_finished_event"
    download: DownloadInfo


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        HelloRequest,
        HelloReply,
        SubmitRequest,
        SubmitReply,
        CancelRequest,
        CancelReply,
        StatusRequest,
        StatusReply,
        ListJobsRequest,
        ListJobsReply,
        FetchRequest,
        FetchReply,
        DeleteRequest,
        DeleteReply,
        PingRequest,
        PingReply,
        ErrorReply,
        ProgressEvent,
        ResultEvent,
        JobFailedEvent,
        DownloadRequest,
        DownloadReply,
        DownloadStatusRequest,
        DownloadStatusReply,
        DownloadCancelRequest,
        DownloadCancelReply,
        LoadRequest,
        UnloadRequest,
        ModelStateReply,
        DownloadProgressEvent,
        DownloadFinishedEvent,
    )
}
REQUEST_TYPES = frozenset(name for name in MESSAGE_TYPES if name.endswith("_request"))
EVENT_TYPES = frozenset(name for name in MESSAGE_TYPES if name.endswith("_event"))
