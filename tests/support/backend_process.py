"""Start a real backend (`dreamcad-backend serve`) in a subprocess for tests; stdlib only.

Used by the backend's tests and by the add-on's tests (which run in the Blender environment and
point ``DREAMCAD_BACKEND_PYTHON`` at the backend environment's interpreter).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backend_python() -> str:
    return os.environ.get("DREAMCAD_BACKEND_PYTHON", sys.executable)


class BackendProcess:
    """A ``serve`` subprocess on a free loopback port with its own data directory."""

    def __init__(
        self,
        data_dir: Path,
        *extra_args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        warm_up: bool = False,
        log_path: Path | None = None,
        device: str = "cpu",
    ) -> None:
        self.data_dir = data_dir
        self.device = device
        self.warm_up = warm_up
        self.port = port or free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.env = env or {}
        # Beside the data unless told: a test that fills the data's disk keeps its log elsewhere.
        self.log_path = log_path or data_dir / "backend.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait_s: float = 60.0) -> BackendProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # A restart appends to the same log: only what this start writes counts.
        log_start = log.tell()
        self.process = subprocess.Popen(
            [
                backend_python(),
                "-m",
                "backend.cli",
                "serve",
                "--address",
                self.address,
                "--data-dir",
                str(self.data_dir),
                "--device",
                self.device,
                # setup compiled the kernels; skip the start-up check unless a test wants it
                *([] if self.warm_up else ["--no-warmup"]),
                *self.extra_args,
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"backend exited with {self.process.returncode}:\n{self.log()}")
            if b"serving on" in self.log_path.read_bytes()[log_start:]:
                return self
            time.sleep(0.05)
        raise TimeoutError(f"backend did not start in {wait_s} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up, like a crash or the OOM killer."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> BackendProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
