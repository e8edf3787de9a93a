"""The benchmark report's charts (matplotlib, files only)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark boxes
import matplotlib.pyplot as plt

from benchmarks.reporting.comparisons import NOT_LIKE_FOR_LIKE, Comparison

OURS, UPSTREAM = "#2b7bba", "#b0b0b0"


def _bars(comp: Comparison) -> tuple[list[str], list[float], list[float]]:
    """Labels, ours, upstream: one bar pair per stage, plus the total when there are several."""
    if len(comp.stages) == 1:
        return comp.stages, comp.ours, comp.upstream
    total = [sum(comp.ours)], [sum(comp.upstream)]
    return [*comp.stages, "total"], [*comp.ours, *total[0]], [*comp.upstream, *total[1]]


def draw_comparisons(found: list[Comparison], path: Path) -> None:
    heights = [len(_bars(c)[0]) for c in found]
    fig, axes = plt.subplots(
        len(found), 1, figsize=(8, 0.3 + 0.75 * len(found) + 0.32 * sum(heights)),
        height_ratios=heights, squeeze=False,
    )  # fmt: skip
    for ax, comp in zip(axes[:, 0], found, strict=True):
        labels, ours, upstream = _bars(comp)
        y = range(len(labels))
        ax.barh([i + 0.2 for i in y], upstream, 0.4, color=UPSTREAM, label="upstream")
        ax.barh([i - 0.2 for i in y], ours, 0.4, color=OURS, label="ours")
        ax.set_yticks(list(y), labels)
        ax.invert_yaxis()
        mark = "" if comp.like_for_like else f" - {NOT_LIKE_FOR_LIKE}"
        ax.set_title(f"{comp.title}: {comp.speedup:.2f}x{mark}", fontsize=9, loc="left")
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_memory(rows: list[tuple[str, float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(rows)))
    y = range(len(rows))
    ax.barh(list(y), [r[1] for r in rows], 0.5, color=OURS, label="peak")
    ax.scatter([r[2] for r in rows], list(y), marker="|", s=400, color="#c0392b", label="target")
    ax.set_yticks(list(y), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("GiB of GPU memory (H100)")
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_geometry(
    stages: list[str], ours: list[float], reference: dict[str, float], path: Path
) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), width_ratios=[1, 1.4])
    start = 0.0
    for name, seconds in zip(stages, ours, strict=True):
        left.barh([0], [seconds], left=start, label=f"{name} {seconds:.2f}s")
        start += seconds
    left.set_yticks([])
    left.set_xlabel("seconds")
    left.set_title(f"our pipeline: {sum(ours):.2f} s (800k -> 20k faces, 2k maps)", fontsize=9)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    ours_by_stage = dict(zip(stages, ours, strict=True))
    labels, values, colours = [], [], []
    for label, seconds in reference.items():
        stage = label.split(":")[0]
        labels += [f"{stage}: ours", label]
        values += [ours_by_stage[stage], seconds]
        colours += [OURS, UPSTREAM]
    y = range(len(labels))
    right.barh(list(y), values, color=colours)
    right.set_xscale("log")
    right.set_yticks(list(y), labels, fontsize=7)
    right.invert_yaxis()
    right.set_xlabel("seconds (log)")
    right.set_title("same stage, reference tools", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
