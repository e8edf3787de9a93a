"""local_backend.py and the start/stop operators: a real backend from DREAMCAD_BACKEND_PYTHON."""

from __future__ import annotations

import time
from pathlib import Path

import bpy
import pytest

from shared_protocol.errors import ErrorCode, ProtocolError
from tests.blender_addon.conftest import pump
from tests.support.backend_process import backend_python, free_port


def wait_for_log(backend, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(text in line for line in backend.log_tail(50)):
        assert backend.running, f"backend exited: {backend.log_tail(50)}"
        assert time.monotonic() < deadline, "backend did not start"
        time.sleep(0.1)


def test_start_log_and_stop(addon, tmp_path: Path) -> None:
    backend = addon.local_backend.LocalBackend(
        Path(backend_python()), f"tcp://127.0.0.1:{free_port()}", tmp_path / "data",
        tmp_path / "logs" / "backend.log")
    backend.start()
    try:
        wait_for_log(backend, "serving on")
        assert backend.running and backend.pid
        assert (tmp_path / "data").is_dir()
    finally:
        backend.stop()
    assert not backend.running and backend.exit_code is None  # forgotten once stopped
    backend.stop()  # stopping twice is harmless


def test_unusable_settings_are_clear_errors(addon, tmp_path: Path) -> None:
    missing = addon.local_backend.LocalBackend(tmp_path / "no-python", "tcp://127.0.0.1:5555",
                                               tmp_path, tmp_path / "log")
    with pytest.raises(ProtocolError) as caught:
        missing.start()
    assert caught.value.field == "backend_python" and "setup_env.sh" in caught.value.hint
    remote = addon.local_backend.LocalBackend(Path(backend_python()), "tcp://10.0.0.1:5555",
                                              tmp_path, tmp_path / "log")
    with pytest.raises(ProtocolError) as caught:
        remote.start()
    assert caught.value.code is ErrorCode.INVALID_FIELD


def test_operators_start_connect_show_log_and_stop(fresh, tmp_path: Path) -> None:
    prefs = fresh.preferences.preferences()
    prefs.backend_python = backend_python()
    prefs.backend_address = f"tcp://127.0.0.1:{free_port()}"
    prefs.backend_data_dir = str(tmp_path / "data")
    runtime = fresh.runtime
    assert bpy.ops.dreamcad.start_local_backend() == {"FINISHED"}
    try:
        pump(fresh, lambda: runtime.STATE.session.connected)
        pump(fresh, lambda: any("serving on" in line for line in runtime.STATE.log_lines))
        assert [m.id for m in fresh.live_state.models()]
        process = runtime.STATE.local_backend
    finally:
        bpy.ops.dreamcad.stop_local_backend()
    assert runtime.STATE.local_backend is None and not process.running
