"""What a weights download fetches and where: a model's (or component's) pinned source, the
standard HF cache folder (so ``HF_HOME`` and ``HF_HUB_OFFLINE`` apply as users expect), and the
sha256 a fetched file is checked against. The transfer itself (resumable, cancellable, with
progress and the disk check) is backend/downloads/transfer.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from backend.models.base import ModelAdapter, WeightsSource
from shared_protocol.errors import ErrorCode, ProtocolError


def sha256_of(path: Path, chunk: int = 8 * 2**20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


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
