"""torch, if this process has imported it: without importing it, and never half-imported.

The service looks torch up rather than importing it (the built-in models must not pay for the
import, and a job that never touched CUDA has no allocator to ask). ``sys.modules`` holds torch
from the moment its import *starts*: a worker that read ``sys.modules["torch"].cuda`` while the
start-up warm-up thread was still importing torch found a half-initialised module and died
(seen on a GPU server). ``import`` waits for another thread's import in progress to finish.
"""

from __future__ import annotations

import sys
from types import ModuleType


def loaded_torch() -> ModuleType | None:
    """The torch module once any thread has imported it (waiting for an import another thread
    has under way), else None."""
    if "torch" not in sys.modules:
        return None
    import torch  # the import system's module lock: returns once torch is whole

    return torch
