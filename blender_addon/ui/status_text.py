"""Words for the panel, made from live state: connection line, GPU line, progress line.

Pure functions (no bpy) so the panel's draw code stays short and the wording is testable.
"""

from __future__ import annotations

from shared_protocol.messages import GpuInfo, Progress


def gpu_line(gpus: tuple[GpuInfo, ...]) -> str:
    if not gpus:
        return "No GPU: models run on the CPU"
    gpu = gpus[0]
    free_gb = gpu.memory_free_mb / 1024
    more = f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else ""
    return f"{gpu.name}: {free_gb:.1f} GB free{more}"


def progress_line(progress: Progress | None, state: str) -> str:
    """``stage · step 3/10 · ETA 12 s`` (or the job's state before any progress)."""
    if progress is None:
        return state.capitalize()
    parts = [progress.stage or state]
    if progress.total:
        parts.append(f"step {progress.step}/{progress.total}")
    if progress.eta_s is not None:
        parts.append(f"ETA {format_seconds(progress.eta_s)}")
    return " · ".join(parts)


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest:02d} s"


def wrap(text: str, width: int = 42) -> list[str]:
    """Split ``text`` into lines of about ``width`` characters for narrow sidebar labels."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines
