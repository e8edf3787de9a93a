"""Terminal output shared by the local and client subcommands: the progress bar."""

from __future__ import annotations

from tqdm import tqdm

from shared_protocol.messages import Progress


class ProgressBar:
    """A tqdm bar over the job's fraction, showing the stage and message."""

    def __init__(self) -> None:
        self.bar = tqdm(total=1000, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def __call__(self, progress: Progress, preview: bytes | None = None) -> None:
        self.bar.set_description(f"{progress.stage:>9}")
        self.bar.set_postfix_str(progress.message[:40])
        self.bar.update(int(progress.fraction * 1000) - self.bar.n)

    def close(self) -> None:
        self.bar.close()
