"""Fetch a model's weight files into the Hugging Face cache: progress, cancel, resume, checksums.

``plan`` lists what one download fetches (the model's files, its required components and the
chosen optional ones; declared folders are listed through the hub's tree API). ``Transfer``
fetches them one by one, streaming into ``blobs/<name>.incomplete`` in the standard cache
layout; a cancelled or interrupted download leaves that file, and the next attempt asks the hub
for the rest (an HTTP range). A finished file is checked against its pinned sha256 (declared by
the adapter, or the hub's LFS id), then moved to its blob and linked from
``snapshots/<commit>/<path>``, where the registry (and the hub library) find it. Files already
in the snapshot are skipped, so a repeated download is cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from backend.cancellation import CancelToken
from backend.download import cache_dir, sha256_of, source_of
from backend.downloads import hub_client
from backend.models.base import ModelAdapter, WeightsSource, weights_env_var
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import DownloadProgress

CHUNK_BYTES = 1 << 20
DISK_MARGIN = 1.1  # keep 10 % more free than what is left to fetch
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SPEED_WINDOW_S = 5.0  # the speed (and so the ETA) is measured over the last few seconds


@dataclass(frozen=True)
class PlannedFile:
    repo_id: str
    revision: str
    path: str
    size: int = 0
    sha256: str = ""
    env_name: str = ""  # where a user could point instead, for the offline hint


def repo_dir(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def sources_of(
    cls: type[ModelAdapter], components: tuple[str, ...], only_components: bool
) -> list[tuple[str, WeightsSource]]:
    """(env var, source) for each part a download fetches; unknown components are refused."""
    names = list(dict.fromkeys([*cls.required_components, *components]))
    parts: list[tuple[str | None, WeightsSource]] = []
    if cls.weights is not None and not (only_components and components):
        parts.append((None, source_of(cls)))
    parts += [(name, source_of(cls, name)) for name in names]
    if not parts:
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER, f"model {cls.id!r} has no weights to download",
            field="body.model",
        )  # fmt: skip
    return [
        (weights_env_var(f"{cls.id}_{name}" if name else cls.id), source) for name, source in parts
    ]


def plan(
    cls: type[ModelAdapter],
    components: tuple[str, ...] = (),
    only_components: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> list[PlannedFile]:
    """Every file the download fetches, with sizes (a HEAD where none was declared)."""
    files: list[PlannedFile] = []
    for env_name, source in sources_of(cls, components, only_components):
        base = PlannedFile(source.repo_id, source.revision, "", env_name=env_name)
        for declared in source.files:
            size = declared.size
            if not size:  # the size of what is here, else the hub's (totals must not shrink)
                here = replace(base, path=declared.path)
                size = (_snapshot_file(here).stat().st_size if _in_snapshot(here) else
                        hub_client.file_size(source.repo_id, source.revision, declared.path,
                                             env_name))  # fmt: skip
            files.append(replace(base, path=declared.path, size=size, sha256=declared.sha256))
        for folder in source.folders:
            if on_step:
                on_step(f"{folder}/")
            for found in hub_client.list_folder(source.repo_id, source.revision, folder, env_name):
                files.append(replace(base, path=found.path, size=found.size, sha256=found.sha256))
    return files


def _snapshot_file(file: PlannedFile, commit: str | None = None) -> Path:
    revision = commit or _commit_of(file.repo_id, file.revision) or file.revision
    return repo_dir(file.repo_id) / "snapshots" / revision / file.path


def _commit_of(repo_id: str, revision: str) -> str | None:
    if COMMIT.match(revision):
        return revision
    ref = repo_dir(repo_id) / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def _in_snapshot(file: PlannedFile) -> bool:
    return _commit_of(file.repo_id, file.revision) is not None and _snapshot_file(file).is_file()


def _incomplete(file: PlannedFile) -> Path:
    name = file.sha256 or hashlib.sha256(f"{file.revision}/{file.path}".encode()).hexdigest()
    return repo_dir(file.repo_id) / "blobs" / f"{name}.incomplete"


class Transfer:
    """One download's fetch loop; ``on_progress`` is called at most every ``interval_s``."""

    def __init__(
        self,
        files: list[PlannedFile],
        on_progress: Callable[[DownloadProgress], None],
        cancel: CancelToken,
        interval_s: float = 0.25,
    ) -> None:
        self.files = files
        self.on_progress = on_progress
        self.cancel = cancel
        self.interval_s = interval_s
        self.total = sum(f.size for f in files)
        self.done = 0
        self.files_done = 0
        self._samples: list[tuple[float, int]] = []  # (time, bytes fetched this run)
        self._fetched = 0
        self._last_report = 0.0
        self._current = ""

    def run(self) -> Path | None:
        """Fetch every file not yet here; return the last snapshot folder written."""
        pending = [f for f in self.files if not _in_snapshot(f)]
        self.files_done = len(self.files) - len(pending)
        self.done = sum(f.size for f in self.files if f not in pending)
        self.done += sum(_partial_size(f) for f in pending)
        _check_disk(self.total - self.done)
        folder = None
        for file in pending:
            self._current = file.path
            folder = self._fetch(file)
            self.files_done += 1
            self._report(force=True)
        self._current = ""
        self._report(force=True)
        return folder

    def _fetch(self, file: PlannedFile) -> Path:
        partial = _incomplete(file)
        partial.parent.mkdir(parents=True, exist_ok=True)
        start = _partial_size(file)
        if file.size and start >= file.size:  # fetched whole before a stop: only verify it
            commit = _commit_of(file.repo_id, file.revision) or file.revision
        else:
            self.cancel.raise_if_cancelled()
            stream, offset, commit = hub_client.open_file(
                file.repo_id, file.revision, file.path, start, file.env_name
            )
            if offset != start:  # the server sent the whole file: start over
                self.done -= start
            with stream, partial.open("r+b" if offset else "wb") as out:
                out.seek(offset)
                out.truncate()
                while block := stream.read(CHUNK_BYTES):
                    out.write(block)
                    self._advance(len(block))
                    self.cancel.raise_if_cancelled()
            commit = commit or file.revision
        _verify(file, partial)
        return _place(file, partial, commit)

    def _advance(self, count: int) -> None:
        self.done += count
        self._fetched += count
        self._report()

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < self.interval_s:
            return
        self._last_report = now
        self._samples.append((now, self._fetched))
        self._samples = [s for s in self._samples if now - s[0] <= SPEED_WINDOW_S] or [
            (now, self._fetched)
        ]
        elapsed = now - self._samples[0][0]
        speed = (self._fetched - self._samples[0][1]) / elapsed if elapsed > 0 else 0.0
        left = max(0, self.total - self.done)
        self.on_progress(
            DownloadProgress(
                bytes_done=self.done,
                bytes_total=self.total,
                files_done=self.files_done,
                files_total=len(self.files),
                speed_bps=round(speed, 1),
                eta_s=round(left / speed, 1) if speed > 0 else (0.0 if not left else None),
                current_file=self._current,
                fraction=min(1.0, self.done / self.total) if self.total else 0.0,
            )
        )


def _partial_size(file: PlannedFile) -> int:
    partial = _incomplete(file)
    return partial.stat().st_size if partial.is_file() else 0


def _check_disk(needed: int) -> None:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed * DISK_MARGIN > free:
        raise ProtocolError(
            ErrorCode.DISK_FULL,
            f"the download needs {needed * DISK_MARGIN / 2**20:.1f} MB more but {folder} has "
            f"{free / 2**20:.1f} MB free",
            hint="Free disk space, or point HF_HOME at a larger disk.",
        )


def _verify(file: PlannedFile, partial: Path) -> None:
    if file.sha256 and (found := sha256_of(partial)) != file.sha256:
        partial.unlink()  # a wrong file must not be resumed from
        raise ProtocolError(
            ErrorCode.CHECKSUM_MISMATCH,
            f"{file.repo_id}/{file.path} has sha256 {found[:12]}..., not the pinned "
            f"{file.sha256[:12]}...",
        )


def _place(file: PlannedFile, partial: Path, commit: str) -> Path:
    """Move the checked file to its blob, link it from the snapshot; return the snapshot."""
    blob = partial.with_name(file.sha256 or partial.stem)
    os.replace(partial, blob)
    repo = repo_dir(file.repo_id)
    if commit != file.revision:  # a branch: record which commit it pointed at
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / file.revision).write_text(commit)
    target = _snapshot_file(file, commit)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        target.symlink_to(os.path.relpath(blob, target.parent))
    except OSError:  # no symlinks here (some Windows set-ups): keep a plain copy
        shutil.copyfile(blob, target)
    return target.parents[len(Path(file.path).parts) - 1]
