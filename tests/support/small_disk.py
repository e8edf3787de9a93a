"""A real, small filesystem that tests fill up: an 8 MiB tmpfs mounted for one test.

Mounting needs root (CI runs as root); where ``mount`` fails the test is skipped with the reason.
``fill`` writes a filler file until the disk is full (or only ``leave_bytes`` are free),
``free`` deletes it again. The mount is always undone, lazily if a process still holds it.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE_MB = 8


class SmallDisk:
    def __init__(self, mount_point: Path) -> None:
        self.path = mount_point
        self.filler = mount_point / "filler.bin"

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave_bytes: int = 0) -> None:
        """Write the filler until at most ``leave_bytes`` are free (0: until nothing fits)."""
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            for chunk in (1 << 16, 512):  # big writes, then small ones for the last pages
                try:
                    while self.free_bytes() > leave_bytes:
                        size = min(chunk, self.free_bytes() - leave_bytes) if leave_bytes else chunk
                        os.write(descriptor, bytes(size))
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(descriptor)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield SmallDisk(mount_point)
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
