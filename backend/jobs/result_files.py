"""A job's further result files (beside its asset): their names, media types and where they live.

A model may hand over extra files with its mesh (``RawAsset.extra_files``, e.g. TRELLIS's
``gaussians.ply``). The job stores each under ``<job dir>/files/<name>`` and lists it in the
manifest as a ``ResultFile`` (name, media type, size, and the map from its coordinates to the
asset's); a client fetches one with ``fetch_request {file}``, in slices when it is larger than a
frame. Names are checked here once, so a model can never write outside the job's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import MAX_FILE_NAME_CHARS, Manifest, ResultFile

FILES_FOLDER = "files"
MEDIA_TYPES = {".ply": "model/x-ply", ".json": "application/json", ".png": "image/png"}
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_FILE_NAME_CHARS - 1}}}")


def check_name(name: str) -> str:
    """``name`` if it is a plain file name (letters, digits, ``._-``; no folders), else raise."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{name!r} is not a result file name (letters, digits, '._-')")
    return name


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")


def describe(
    files: Mapping[str, bytes],
    frames: Mapping[str, np.ndarray],
    to_asset: np.ndarray,
) -> tuple[ResultFile, ...]:
    """The manifest's entries for ``files`` (sorted by name). ``frames`` maps a file's
    coordinates to the model's frame, ``to_asset`` (4, 4) that frame to the asset's."""
    entries = []
    for name in sorted(files):
        frame = frames.get(name)
        matrix = () if frame is None else tuple(
            round(float(v), 9) for v in (np.asarray(to_asset) @ np.asarray(frame)).ravel()
        )
        entries.append(
            ResultFile(check_name(name), media_type(name), len(files[name]), to_asset=matrix)
        )
    return tuple(entries)


def file_path(job_dir: Path, name: str) -> Path:
    return job_dir / FILES_FOLDER / check_name(name)


def find(manifest: Manifest, name: str) -> ResultFile:
    """The manifest's entry for ``name``; INVALID_FIELD (body.file) when it has none."""
    for entry in manifest.extra_files:
        if entry.name == name:
            return entry
    listed = ", ".join(entry.name for entry in manifest.extra_files) or "none"
    raise ProtocolError(
        ErrorCode.INVALID_FIELD,
        f"the job has no result file {name!r} (its files: {listed})",
        field="body.file",
        hint="Leave file empty for the main asset, or name one of the manifest's extra_files.",
    )


def read_slice(path: Path, offset: int, max_bytes: int) -> tuple[bytes, int]:
    """(``max_bytes`` bytes of ``path`` from ``offset``, 0 = to the end; the file's size)."""
    size = path.stat().st_size
    if offset > size:
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE, f"offset {offset} is past the file's end ({size} bytes)",
            field="body.offset",
        )  # fmt: skip
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(max_bytes or -1), size
