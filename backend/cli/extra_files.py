"""Where the CLI writes a job's further result files, and how it fetches them from a backend.

They go beside the asset, named after it: ``out.glb`` + ``out.gaussians.ply``. A remote file is
fetched in slices of at most ``SLICE_BYTES`` (a full-size splat file can pass 50 MB, and a
frame's limit is the backend's to choose), each checked against the size the backend reports.
"""

from __future__ import annotations

from pathlib import Path

from shared_protocol.client import BackendClient
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import FetchReply, FetchRequest, Manifest

SLICE_BYTES = 16 * 2**20


def beside(output: Path, name: str) -> Path:
    """The path of the extra file ``name`` next to the asset written at ``output``."""
    return output.with_name(f"{output.stem}.{name}")


def write_local(output: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` (name -> bytes) beside ``output``; return the paths, sorted by name."""
    paths = []
    for name in sorted(files):
        path = beside(output, name)
        path.write_bytes(files[name])
        paths.append(path)
    return paths


def fetch_file(
    client: BackendClient, job_id: str, name: str, timeout_s: float, slice_bytes: int = SLICE_BYTES
) -> bytes:
    """The whole of the job's extra file ``name``, fetched ``slice_bytes`` at a time."""
    parts: list[bytes] = []
    received, total = 0, None
    while total is None or received < total:
        request = FetchRequest(job_id=job_id, file=name, offset=received, max_bytes=slice_bytes)
        reply = client.request(request, timeout_s)
        assert isinstance(reply, FetchReply)
        total = reply.total_bytes
        if not reply.asset and received < total:
            raise ProtocolError(ErrorCode.RESULT_EXPIRED, f"{name} of {job_id} ended early")
        parts.append(reply.asset)
        received += len(reply.asset)
    return b"".join(parts)


def fetch_remote(
    client: BackendClient, job_id: str, manifest: Manifest, output: Path, timeout_s: float
) -> list[Path]:
    """Fetch every extra file the manifest lists and write it beside ``output``."""
    files = {entry.name: fetch_file(client, job_id, entry.name, timeout_s)
             for entry in manifest.extra_files}  # fmt: skip
    for entry in manifest.extra_files:
        if len(files[entry.name]) != entry.size_bytes:
            raise ProtocolError(
                ErrorCode.RESULT_EXPIRED,
                f"{entry.name} of {job_id} has {len(files[entry.name])} bytes, "
                f"the manifest says {entry.size_bytes}",
            )
    return write_local(output, files)
