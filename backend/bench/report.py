"""A bench's results: the table on the terminal, the JSON, plots, and the comparison with an
earlier JSON (``--compare-to``): a stage 10 % slower or a production figure worse is flagged."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from backend.bench import metrics
from backend.bench.runs import BenchRun

SLOWER = 1.10  # a stage this much slower than before is flagged
# Stages shorter than this (s) in both runs are not compared: their jitter is bigger than 10 %.
MIN_COMPARED_S = 0.02
COLUMNS = (
    "faces",
    "watertight",
    "pieces",
    "non_manifold_edges",
    "inner_shell_faces_left",
    "uv_utilization",
    "texel_density_spread",
)


def document(runs: list[BenchRun], conditions: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of a bench."""
    return {
        "benchmark": "dreamcad-backend bench",
        "conditions": {
            **conditions,
            "python": platform.python_version(),
            "machine": platform.platform(),
        },
        "runs": [run.as_dict() for run in runs],
    }


def table(runs: list[BenchRun]) -> str:
    """One line per run: total, the three biggest stages, faces and the production figures."""
    lines = [f"{'run':<44}{'total s':>8}  {'VRAM MB':>8}  " + "  ".join(COLUMNS)]
    for run in runs:
        if run.error:
            lines.append(f"{run.key:<44}  failed: {run.error}")
            continue
        vram = "-" if run.peak_vram_mb is None else f"{run.peak_vram_mb:.0f}"
        figures = {"faces": run.faces, **run.figures}
        cells = "  ".join(f"{_cell(figures.get(name)):>{len(name)}}" for name in COLUMNS)
        lines.append(f"{run.key:<44}{run.wall_s:>8.2f}  {vram:>8}  {cells}")
        top = sorted(run.stages_s.items(), key=lambda kv: -kv[1])[:4]
        lines.append("    " + ", ".join(f"{name} {seconds:.3f}" for name, seconds in top))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every stage 10 % slower and every figure worse in ``new`` than in ``old`` (same run
    keys), plus runs that failed now but not before. Empty: no regression."""
    before = {run["key"]: run for run in old.get("runs", [])}
    flags = []
    for run in new["runs"]:
        previous = before.get(run["key"])
        if previous is None:
            continue
        if run["error"] and not previous["error"]:
            flags.append(f"{run['key']}: failed ({run['error']}); it ran before")
            continue
        if run["error"] or previous["error"]:
            continue
        for stage, seconds in run["stages_s"].items():
            was = previous["stages_s"].get(stage)
            if was is None or max(was, seconds) < MIN_COMPARED_S:
                continue
            if seconds > SLOWER * was:
                flags.append(
                    f"{run['key']}: stage {stage} {seconds:.3f} s, was {was:.3f} s "
                    f"(+{(seconds / was - 1) * 100:.0f} %)"
                    if was > 0
                    else f"{run['key']}: stage {stage} {seconds:.3f} s, was 0"
                )
        figures = {"faces": run["faces"], **run["figures"]}
        was_figures = {"faces": previous["faces"], **previous["figures"]}
        for name, value in figures.items():
            if name in was_figures and metrics.worse(name, was_figures[name], value):
                flags.append(f"{run['key']}: {name} {value}, was {was_figures[name]} (worse)")
    return flags


def write_plots(runs: list[BenchRun], folder: Path) -> list[Path] | str:
    """Stage times and production figures as PNG charts; a sentence when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plots (pip install matplotlib)"
    done = [run for run in runs if not run.error]
    if not done:
        return "no run finished: no plots"
    paths = []
    stages = sorted(
        {
            name
            for run in done
            for name in run.stages_s
            if ("." not in name) or (name.startswith("pipeline.") and name.count(".") == 1)
        }
    )
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(done) + 1.5))
    left = [0.0] * len(done)
    for stage in stages:
        widths = [run.stages_s.get(stage, 0.0) for run in done]
        axis.barh([run.key for run in done], widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axis.set_xlabel("seconds")
    axis.legend(fontsize=7, ncol=3)
    axis.set_title("time per stage")
    figure.tight_layout()
    paths.append(folder / "bench_stages.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    names = [name for name in COLUMNS[2:] if any(name in run.figures for run in done)]
    figure, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 0.45 * len(done) + 1.5))
    for axis, name in zip(axes, names, strict=True):
        axis.barh([run.key for run in done], [float(run.figures.get(name, 0)) for run in done])
        axis.set_title(name, fontsize=8)
        if axis is not axes[0]:
            axis.set_yticklabels([])
    figure.tight_layout()
    paths.append(folder / "bench_figures.png")
    figure.savefig(paths[-1], dpi=100)
    plt.close(figure)
    return paths


def save(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=float))
