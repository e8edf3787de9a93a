"""scripts/build_addon.py: the zip's contents, and installing it in real Blender."""

from __future__ import annotations

import re
import tomllib
import zipfile
from pathlib import Path

import bpy

from tests.blender_addon.conftest import ADDON_MODULE, USER_DIR

REPO = Path(__file__).resolve().parents[3]


def read_manifest(zip_path: Path) -> dict:
    with zipfile.ZipFile(zip_path) as archive:
        return tomllib.loads(archive.read("blender_manifest.toml").decode())


def test_manifest_names_every_bundled_wheel_and_platform(addon_zip: Path) -> None:
    manifest = read_manifest(addon_zip)
    assert manifest["id"] == "dreamcad"
    assert manifest["blender_version_min"] == "4.2.0"
    assert manifest["blender_version_max"].startswith("6.")
    with zipfile.ZipFile(addon_zip) as archive:
        names = set(archive.namelist())
    wheels = [w.removeprefix("./") for w in manifest["wheels"]]
    assert wheels and all(w in names for w in wheels)
    assert {n for n in names if n.startswith("wheels/")} == set(wheels)
    zmq = [w for w in wheels if "pyzmq" in w]
    for platform in ("manylinux", "win_amd64", "macosx"):
        # Blender 4.2-5.0 (Python 3.11) and later 5.x (3.13, through the abi3 wheel).
        assert any(platform in w and "cp311-cp311" in w for w in zmq), platform
        assert any(platform in w and "abi3" in w for w in zmq), platform
    assert any("universal2" in w or "arm64" in w for w in zmq if "macosx" in w)


def test_zip_holds_the_addon_sources_and_no_caches(addon_zip: Path) -> None:
    with zipfile.ZipFile(addon_zip) as archive:
        names = archive.namelist()
    sources = {p.relative_to(REPO / "blender_addon").as_posix()
               for p in (REPO / "blender_addon").rglob("*.py") if "__pycache__" not in p.parts}
    assert sources <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_protocol_wheel_holds_every_shared_protocol_module(addon_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(addon_zip) as archive:
        (wheel_name,) = [n for n in archive.namelist() if "shared_protocol" in n]
        wheel_path = tmp_path / Path(wheel_name).name
        wheel_path.write_bytes(archive.read(wheel_name))
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        record = wheel.read(next(n for n in names if n.endswith("RECORD"))).decode()
    modules = {f"shared_protocol/{p.name}" for p in (REPO / "shared_protocol").glob("*.py")}
    assert modules <= names
    assert all(re.search(rf"^{re.escape(m)},sha256=", record, re.M) for m in modules)


def test_installed_enabled_and_its_wheels_installed_by_blender(addon) -> None:
    assert ADDON_MODULE in bpy.context.preferences.addons
    assert hasattr(bpy.types.Scene, "dreamcad") and hasattr(bpy.types, "DREAMCAD_PT_main")
    site = list((USER_DIR / "extensions" / ".local").glob("lib/python*/site-packages"))
    assert site, "Blender installed none of the manifest's wheels"
    installed = {p.name for p in site[0].iterdir()}
    assert {"shared_protocol", "zmq"} <= installed


def test_disable_and_enable_again_leaves_nothing_behind(addon) -> None:
    bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    assert not hasattr(bpy.types.Scene, "dreamcad")
    assert not hasattr(bpy.types, "DREAMCAD_PT_main")
    assert not bpy.app.timers.is_registered(addon.runtime.tick)
    bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
    assert hasattr(bpy.types.Scene, "dreamcad")
