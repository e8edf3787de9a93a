"""When the backend compiles its hot torch code (``torch.compile``): one policy for all of it.

``DREAMCAD_COMPILE``: ``auto`` (default: on for a CUDA device when Triton is installed; on the
CPU compiling costs more than it gives and CI would pay it), ``1`` (always), ``0`` (never). The
first call of compiled code pays the compilation; inductor's on-disk cache shortens later starts.
"""

from __future__ import annotations

import os
from typing import Any

COMPILE_ENV = "DREAMCAD_COMPILE"


def should_compile(device: Any) -> bool:
    """The ``DREAMCAD_COMPILE`` policy for code running on ``device`` (a str or torch.device)."""
    choice = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    if choice in ("0", "false", "no", "off"):
        return False
    if choice in ("1", "true", "yes", "on"):
        return True
    import torch  # only torch code asks

    if torch.device(device).type != "cuda":
        return False
    from torch.utils._triton import has_triton  # Triton ships with torch's Linux CUDA wheels

    return has_triton()
