"""Test inputs for the built-in models (they have no weights): fast minimal parameters.

Imported by tests only (tests/backend/models/test_contract.py); production never imports it.
"""

from __future__ import annotations

from pathlib import Path

TINY_PARAMETERS: dict[str, dict] = {
    "procedural": {"resolution": 24, "steps": 4},
    "inflate": {"resolution": 48},
}


def write_tiny_weights(folder: Path, model_id: str) -> Path:
    raise ValueError(f"{model_id} is built in: it has no weights to write")
