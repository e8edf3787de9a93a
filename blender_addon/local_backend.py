"""Start and stop a backend process on this machine from a given Python environment (no bpy).

The backend runs in its own environment (torch, CUDA), never in Blender's Python: the user
points the add-on at that environment's interpreter and the add-on launches
``dreamcad-backend serve`` with it, sending its output to a log file the panel can show. Only a
backend this module started is ever stopped by it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared_protocol.errors import ErrorCode, ProtocolError

# Run the CLI through the interpreter rather than the console script: the script's location
# differs by platform (bin/ vs Scripts/, .exe), the interpreter path is what the user gave us.
_LAUNCH = "import sys; from backend.cli import main; sys.exit(main())"
STOP_TIMEOUT_S = 10.0


class LocalBackend:
    """One backend subprocess: ``start``, ``running``, ``log_tail``, ``stop``."""

    def __init__(self, python: Path, address: str, data_dir: Path, log_path: Path) -> None:
        self.python = Path(python)
        self.address = address
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            str(self.python), "-c", _LAUNCH, "serve",
            "--address", self.address, "--data-dir", str(self.data_dir),
        ]  # fmt: skip

    def start(self) -> None:
        """Launch the backend; raise ProtocolError when the environment path is unusable."""
        if self.running:
            return
        if not self.python.is_file():
            raise ProtocolError(
                ErrorCode.BACKEND_UNREACHABLE,
                f"no Python interpreter at {self.python}",
                field="backend_python",
                hint="Set Preferences > Add-ons > Dream CAD > Backend Python to the backend "
                "environment's interpreter, e.g. .venv/backend/bin/python "
                "(created by scripts/setup_env.sh).",
            )
        if not self.address.startswith("tcp://127.0.0.1:"):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"a local backend must listen on tcp://127.0.0.1:PORT, not {self.address}",
                field="backend_address",
                hint="Use tcp://127.0.0.1:5555, or start a remote backend yourself.",
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                **_detached(),
            )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exit_code(self) -> int | None:
        """The exit status once the process has ended; None while running or never started."""
        return self._process.poll() if self._process is not None else None

    def log_tail(self, lines: int = 12, max_bytes: int = 16_384) -> list[str]:
        """The last ``lines`` lines of the log (reads at most ``max_bytes`` from its end)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - max_bytes))
                text = log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:]

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the backend to stop (SIGTERM), then kill it if it has not after ``timeout_s``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)


def _detached() -> dict[str, object]:
    """Keep Ctrl+C in Blender's terminal from reaching the backend: we stop it ourselves."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}
