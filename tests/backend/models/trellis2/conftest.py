"""One tiny TRELLIS.2 model (official layout + components) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.models.trellis2 import testing


@pytest.fixture(scope="session")
def tiny_trellis2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("trellis2")
    folder = testing.write_tiny_weights(root / "model")
    return folder, testing.write_tiny_components(root / "components")
