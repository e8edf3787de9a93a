"""Downloading model weights from the Hugging Face hub: pinned, resumable, checked.

Only the files an adapter declares are fetched, at its pinned revision, into the standard HF
cache (so ``HF_HOME`` and ``HF_HUB_OFFLINE`` apply as users expect). Before anything is
fetched the free disk is checked against the declared sizes; afterwards each file's sha256 is
checked against the pinned one. Every failure says what to do (log in and accept a gated
licence, go online, free space).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from backend.models.base import ModelAdapter, WeightFile, WeightsSource
from backend.models.registry import weights_env_var
from shared_protocol.errors import ErrorCode, ProtocolError

DISK_MARGIN = 1.1  # keep 10 % more free than the download needs


def sha256_of(path: Path, chunk: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def check_disk(files: tuple[WeightFile, ...], folder: Path) -> None:
    needed = sum(f.size for f in files) * DISK_MARGIN
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ProtocolError(
            ErrorCode.DISK_FULL,
            f"the download needs {needed / 2**30:.1f} GiB but {folder} has {free / 2**30:.1f} GiB "
            "free",
            hint="Free disk space, or point HF_HOME at a larger disk.",
        )


def source_of(cls: type[ModelAdapter], component: str | None = None) -> WeightsSource:
    """The model's own weights, or one of its optional components'."""
    if component is not None:
        if component not in cls.components:
            known = ", ".join(cls.components) or "none"
            raise ProtocolError(
                ErrorCode.INVALID_PARAMETER,
                f"model {cls.id!r} has no component {component!r} (components: {known})",
                field="component",
            )
        return cls.components[component]
    if cls.weights is None:
        raise ProtocolError(
            ErrorCode.INVALID_PARAMETER, f"model {cls.id!r} has no weights to download"
        )
    return cls.weights


def download_weights(
    cls: type[ModelAdapter],
    on_file: Callable[[str, int, int], None] | None = None,
    component: str | None = None,
) -> Path:
    """Fetch ``cls.weights`` (or the named component's) into the HF cache; return the snapshot
    folder. Declared files come one by one (sha256 checked); declared folders whole."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    source = source_of(cls, component)
    env_name = weights_env_var(f"{cls.id}_{component}" if component else cls.id)
    sized = source.files + ((WeightFile("folders", size=source.approx_size),) if source.folders
                            else ())  # fmt: skip
    check_disk(sized, cache_dir())
    folder: Path | None = None
    steps = [f.path for f in source.files] + [f"{name}/" for name in source.folders]
    for index, path in enumerate(steps):
        if on_file:
            on_file(path, index, len(steps))
        weight_file = source.files[index] if index < len(source.files) else None
        try:
            if weight_file is None:  # a whole folder: only its own files, not the whole repo
                snapshot = snapshot_download(
                    source.repo_id, revision=source.revision, allow_patterns=[f"{path}*"]
                )
                folder = Path(snapshot)
                continue
            local = Path(
                hf_hub_download(source.repo_id, weight_file.path, revision=source.revision)
            )
        except GatedRepoError:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{source.repo_id} is gated: its licence must be accepted first",
                hint=f"Accept the licence at https://huggingface.co/{source.repo_id}, then run "
                "`hf auth login` (or set HF_TOKEN) and download again.",
            ) from None
        except RepositoryNotFoundError:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{source.repo_id} was not found (or needs a login)",
                hint="Check the repo id, or log in with `hf auth login`.",
            ) from None
        except LocalEntryNotFoundError as error:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"cannot reach the Hugging Face hub for {path}: {error}",
                hint="Go online (unset HF_HUB_OFFLINE), or copy the files onto this machine and "
                f"point {env_name} at them.",
            ) from None
        if weight_file.sha256 and sha256_of(local) != weight_file.sha256:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{weight_file.path} does not match its pinned sha256",
                hint="Delete it from the HF cache and download again.",
            )
        folder = local.parents[len(Path(weight_file.path).parts) - 1]
    assert folder is not None
    return folder
