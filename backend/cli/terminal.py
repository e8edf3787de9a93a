"""Terminal output shared by the local and client subcommands: job and download progress.

Progress goes to stderr (stdout stays for results). On a terminal it is a live tqdm bar; when
stderr is not a terminal (a log file, CI, a batch run) it is one plain line per stage, or per
file of a download, and never a carriage return: a log must read top to bottom.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from shared_protocol.messages import DownloadProgress, Progress


def _is_terminal(stream: TextIO) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


class ProgressBar:
    """A job's progress: a bar over its fraction, or a line each time the stage changes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        if _is_terminal(self.stream):
            self.bar = tqdm(
                total=1000, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
                file=self.stream,
            )  # fmt: skip
        self._stage = ""

    def __call__(self, progress: Progress, preview: bytes | None = None) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{progress.stage:>9}")
            self.bar.set_postfix_str(progress.message[:40])
            self.bar.update(int(progress.fraction * 1000) - self.bar.n)
            return
        if progress.stage != self._stage:
            self._stage = progress.stage
            message = f": {progress.message}" if progress.message else ""
            print(f"[{progress.fraction:4.0%}] {progress.stage}{message}", file=self.stream,
                  flush=True)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class DownloadBar:
    """A download's progress: a bytes bar with speed and time left, or a line per file."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = _is_terminal(self.stream)
        self.bar: tqdm | None = None
        self._file = ""

    def __call__(self, progress: DownloadProgress) -> None:
        if self.live:
            if self.bar is None:
                self.bar = tqdm(total=progress.bytes_total, unit="B", unit_scale=True,
                                unit_divisor=1024, file=self.stream)  # fmt: skip
            self.bar.set_description(f"{progress.files_done}/{progress.files_total} files")
            self.bar.update(progress.bytes_done - self.bar.n)
            return
        if progress.current_file and progress.current_file != self._file:
            self._file = progress.current_file
            print(
                f"[{progress.files_done + 1}/{progress.files_total}] {progress.current_file} "
                f"({_size(progress.bytes_done)} of {_size(progress.bytes_total)} done"
                f"{_speed(progress)})",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MB"


def _speed(progress: DownloadProgress) -> str:
    if progress.speed_bps <= 0:
        return ""
    eta = f", {progress.eta_s:.0f} s left" if progress.eta_s is not None else ""
    return f", {progress.speed_bps / 2**20:.1f} MB/s{eta}"
