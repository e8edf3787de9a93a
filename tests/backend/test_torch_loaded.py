"""``loaded_torch``: torch only if imported, and never the half-initialised module another
thread is still importing (which killed a GPU server's worker at start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter (torch not yet imported): one thread imports torch, the other waits until
# torch is in sys.modules but still lacks ``cuda`` (mid-import), then asks loaded_torch.
SCRIPT = """
import sys, threading, time
from backend.torch_loaded import loaded_torch
assert loaded_torch() is None
threading.Thread(target=lambda: __import__("torch"), daemon=True).start()
deadline = time.monotonic() + 60
while "torch" not in sys.modules and time.monotonic() < deadline:
    pass
half = sys.modules["torch"]
print("mid-import:", not hasattr(half, "cuda"))
torch = loaded_torch()
print("whole:", torch is half and isinstance(torch.cuda.is_initialized(), bool))
"""


def test_an_import_under_way_on_another_thread_is_waited_for() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "mid-import: True" in lines  # the race was really entered
    assert "whole: True" in lines
