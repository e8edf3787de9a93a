"""Ray stays optional: a backend served without ``--ray`` never imports it."""

from __future__ import annotations

import subprocess
import sys

from tests.support.backend_process import REPO

PROBE = """
import sys
from pathlib import Path
from backend.cli import service
from backend.server import BackendServer
from backend.settings import Settings
server = BackendServer(Settings(data_dir=Path(sys.argv[1]), devices=("cpu",),
                                warm_up_kernels=False))
server.start()
server.close()
print("ray imported" if any(m == "ray" or m.startswith("ray.") for m in sys.modules)
      else "no ray")
"""


def test_a_local_backend_starts_and_stops_without_importing_ray(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "no ray"
