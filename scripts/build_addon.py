"""Build the Dream CAD Blender extension: one zip that installs with no pip and no network.

The zip holds blender_addon/ (as the extension's root), a wheel of shared_protocol built here,
and pyzmq wheels for Linux, Windows and macOS (x86_64 and arm64; Blender 4.2-5.0 run Python
3.11, later 5.x releases Python 3.13), downloaded once with ``pip download --only-binary`` into
.venv/wheel-cache/. The manifest's ``wheels`` list is written to name them all. Blender installs
the wheels that match the user's platform when the extension is installed.

    python scripts/build_addon.py [--out dist/] [--offline]

Prints the zip's path. Any Python 3.11+ with pip runs it (the backend environment does).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "blender_addon"
CACHE = ROOT / ".venv" / "wheel-cache"
PYZMQ = "pyzmq==27.3.0"
PYTHON_VERSIONS = ("3.11", "3.13")
# pip platform tags per target; pyzmq's macOS wheels are universal2 (x86_64 + arm64 in one).
PLATFORMS = {
    "linux-x64": "manylinux_2_28_x86_64",
    "windows-x64": "win_amd64",
    "macos-x64": "macosx_10_15_x86_64",
    "macos-arm64": "macosx_11_0_arm64",
}
PROTOCOL_WHEEL_NAME = "dreamcad_shared_protocol"


def addon_version() -> str:
    manifest = (ADDON / "blender_manifest.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', manifest, re.MULTILINE)
    if match is None:
        raise SystemExit("build_addon: blender_manifest.toml has no version")
    return match.group(1)


def download_pyzmq(offline: bool) -> list[Path]:
    """pyzmq wheels for every platform and Python version (cached; each pip call is a no-op
    once its wheel is there)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels: set[Path] = set()
    for platform in PLATFORMS.values():
        for python in PYTHON_VERSIONS:
            found = _cached(platform, python)
            if found is None:
                if offline:
                    raise SystemExit(f"build_addon: no cached pyzmq wheel for {platform} "
                                     f"py{python} in {CACHE}; run once without --offline")
                subprocess.run(
                    [sys.executable, "-m", "pip", "download", PYZMQ, "--only-binary=:all:",
                     "--no-deps", "--python-version", python, "--platform", platform,
                     "--dest", str(CACHE), "--quiet"],
                    check=True,
                )
                found = _cached(platform, python)
            if found is None:
                raise SystemExit(f"build_addon: pip found no {PYZMQ} wheel for {platform}")
            wheels.add(found)
    return sorted(wheels)


def _cached(platform: str, python: str) -> Path | None:
    """The cached pyzmq wheel that pip would pick for this platform and Python, if any."""
    version = PYZMQ.split("==")[1]
    arch = platform.rsplit("_", 1)[-1] if platform.startswith("macosx") else platform
    cp = "cp" + python.replace(".", "")
    for wheel in sorted(CACHE.glob(f"pyzmq-{version}-*.whl")):
        _name, _ver, py_tag, abi_tag, plat_tag = wheel.stem.split("-", 4)
        python_ok = py_tag == cp or (abi_tag == "abi3" and int(py_tag[3:]) <= int(cp[3:]))
        if platform.startswith("macosx"):
            platform_ok = "macosx" in plat_tag and (arch in plat_tag or "universal2" in plat_tag)
        else:
            platform_ok = platform.split("_")[-2:] == plat_tag.split(".")[-1].split("_")[-2:] \
                if platform.startswith("manylinux") else plat_tag == platform
        if python_ok and platform_ok:
            return wheel
    return None


def build_protocol_wheel(version: str, out_dir: Path) -> Path:
    """A pure-Python wheel of shared_protocol (so Blender installs it like any dependency).

    Its version carries a digest of the sources as a local label (``0.1.0+1a2b3c4d5e6f``):
    Blender keeps an installed wheel while its ``.dist-info`` name is unchanged, so an
    extension rebuilt with a changed protocol but the same add-on version would otherwise
    keep importing the old shared_protocol."""
    files: dict[str, bytes] = {
        f"shared_protocol/{source.name}": source.read_bytes()
        for source in sorted((ROOT / "shared_protocol").glob("*.py"))
    }
    sources = hashlib.sha256()
    for name, data in files.items():
        sources.update(name.encode() + b"\0" + data)
    version = f"{version}+{sources.hexdigest()[:12]}"
    dist_info = f"{PROTOCOL_WHEEL_NAME}-{version}.dist-info"
    path = out_dir / f"{PROTOCOL_WHEEL_NAME}-{version}-py3-none-any.whl"
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {PROTOCOL_WHEEL_NAME}\nVersion: {version}\n"
        "Summary: Dream CAD wire protocol (bundled with the Blender extension)\n"
        "Requires-Dist: pyzmq>=26\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: dreamcad-build-addon\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(_fixed_time(name), data)
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _fixed_time(name: str) -> zipfile.ZipInfo:
    """Entries with a fixed date, so the same sources give the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def manifest_with_wheels(wheels: list[Path]) -> str:
    manifest = (ADDON / "blender_manifest.toml").read_text()
    listing = "wheels = [\n" + "".join(f'    "./wheels/{w.name}",\n' for w in wheels) + "]"
    updated, count = re.subn(r"^wheels = \[[^\]]*\]", listing, manifest, flags=re.MULTILINE)
    if count != 1:
        raise SystemExit("build_addon: blender_manifest.toml needs one `wheels = [...]` line")
    return updated


def build(out_dir: Path, offline: bool = False) -> Path:
    version = addon_version()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheels = [build_protocol_wheel(version, CACHE if CACHE.is_dir() else out_dir),
              *download_pyzmq(offline)]
    target = out_dir / f"dreamcad-{version}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for source in sorted(ADDON.rglob("*")):
            relative = source.relative_to(ADDON).as_posix()
            if source.is_dir() or "__pycache__" in relative or source.suffix == ".pyc":
                continue
            if relative == "blender_manifest.toml":
                archive.writestr(_fixed_time(relative), manifest_with_wheels(wheels))
            else:
                archive.writestr(_fixed_time(relative), source.read_bytes())
        for wheel in wheels:
            archive.writestr(_fixed_time(f"wheels/{wheel.name}"), wheel.read_bytes())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--offline", action="store_true",
                        help="use only cached wheels (fail if one is missing)")
    args = parser.parse_args(argv)
    print(build(args.out, args.offline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
