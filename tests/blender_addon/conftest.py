"""Fixtures for the add-on's tests: real bpy with the built extension installed, real backends.

Blender reads its user folders when bpy is first imported, so BLENDER_USER_RESOURCES points at a
throwaway folder before anything imports bpy: the tests install the extension zip there the way
a user would (Install from Disk, enabled on install) and never touch a real configuration.
Backends are real ``dreamcad-backend serve`` subprocesses from DREAMCAD_BACKEND_PYTHON.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

USER_DIR = Path(tempfile.mkdtemp(prefix="dreamcad-blender-user-"))
os.environ["BLENDER_USER_RESOURCES"] = str(USER_DIR)

bpy = pytest.importorskip("bpy")

from tests.blender_addon.fake_peer import peer_factory  # noqa: E402, F401 (a fixture)
from tests.support.backend_process import BackendProcess  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ADDON_MODULE = "bl_ext.user_default.dreamcad"
FAST = {"resolution": 24, "steps": 4}  # procedural model settings that run in a second or two
SLOW = {"resolution": 256, "steps": 256}  # long enough to cancel or kill mid-job


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_addon.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def installed(addon_zip: Path) -> str:
    """Install the zip and enable it, as a user would; returns the module name."""
    result = bpy.ops.extensions.package_install_files(
        filepath=str(addon_zip), repo="user_default", enable_on_install=True
    )
    assert result == {"FINISHED"}
    return ADDON_MODULE


@pytest.fixture
def addon(installed: str) -> ModuleType:
    """The enabled extension's package (looked up each time: a test may re-enable it)."""
    if installed not in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_enable(module=installed)
    return sys.modules[installed]


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """One real backend shared by the tests that do not stop it."""
    with BackendProcess(tmp_path_factory.mktemp("backend")) as process:
        yield process


@pytest.fixture(scope="session")
def plugin_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """A real backend that also lists ``procedural-tall``, a second text model plugged in as a
    third-party model is (tests/support/tall_procedural.py), for Compare."""
    from tests.support.tall_procedural import plugin_env

    with BackendProcess(tmp_path_factory.mktemp("plugin-backend"), env=plugin_env()) as process:
        yield process


@pytest.fixture
def fresh(addon: ModuleType, tmp_path: Path) -> ModuleType:
    """An empty scene, no live state, results written under this test's tmp_path."""
    reset_runtime(addon)
    bpy.ops.wm.read_homefile(use_empty=True)
    prefs = addon.preferences.preferences()
    prefs.output_directory = str(tmp_path / "results")
    prefs.reply_timeout_s = 10.0
    prefs.use_curve = False  # a test may have turned it on (preferences outlive the scene)
    return addon


@pytest.fixture
def connected(fresh: ModuleType, backend: BackendProcess) -> ModuleType:
    """The add-on connected to the shared backend, the procedural model selected."""
    fresh.preferences.preferences().backend_address = backend.address
    bpy.ops.dreamcad.connect()
    assert fresh.runtime.STATE.session.connected
    assert bpy.ops.dreamcad.select_model(model_id="procedural") == {"FINISHED"}
    return fresh


def reset_runtime(addon: ModuleType) -> None:
    state = addon.runtime.STATE
    if state.local_backend is not None:
        state.local_backend.stop()
    if state.session is not None:
        state.session.close()
    state.reset()  # the preview collection stays open: it belongs to registration


def set_parameters(settings, values: dict[str, object]) -> None:
    for item in settings.parameters:
        if item.name in values:
            setattr(item, f"{item.kind}_value", values[item.name])


def text_job(addon: ModuleType, prompt: str, params: dict[str, object] = FAST) -> None:
    """Set the panel for a small procedural text job."""
    settings = bpy.context.scene.dreamcad
    settings.task = "text"
    settings.prompt = prompt
    settings.target_faces = 500
    settings.texture_size = "256"
    set_parameters(settings, params)


def pump(addon: ModuleType, until, timeout_s: float = 120.0, on_tick=None) -> None:
    """Run the timer callback the way Blender's event loop would, until ``until()`` is true."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, f"timed out; last report: {addon.runtime.STATE.report}"
        addon.runtime.tick()
        if on_tick is not None:
            on_tick()
        time.sleep(0.02)
