"""Benchmark report: the committed results as charts and one Markdown page.

Reads the JSON files the benchmark scripts wrote into benchmarks/results/, draws our stage
times against the upstream implementations measured in the same runs, peak GPU memory against
the issues' targets, and the geometry pipeline's stages against the reference tools, then
writes benchmarks/results/report.md with the PNGs beside it in benchmarks/results/plots/.
Files that are missing are left out of the report, never guessed.

Every ours-against-upstream comparison is listed with its conditions and checked against the
rules (RULES); a committed comparison that breaks them stays in the report, marked "not
like-for-like, superseded when rerun", with what is wrong with it (AUDIT: what the review of
issue 18 found, and what the JSON itself shows: repeats, min/max, warm-up, output agreement).
The parts live in benchmarks/reporting/: the comparisons and their rules, the Markdown
sections, the charts; this script puts the page together.

    .venv/backend/bin/pip install -e .[bench]     # matplotlib
    .venv/backend/bin/python benchmarks/report.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the benchmarks package

from benchmarks.reporting.common import RESULTS  # noqa: E402
from benchmarks.reporting.comparisons import (  # noqa: E402
    NOT_LIKE_FOR_LIKE,
    RULES,
    Comparison,
    comparisons,
    triposr_same_settings,
)
from benchmarks.reporting.gpu_sections import device_steps, first_job, gpu_geometry  # noqa: E402
from benchmarks.reporting.plots import draw_comparisons, draw_geometry, draw_memory  # noqa: E402
from benchmarks.reporting.sections import (  # noqa: E402
    cpu_before_after,
    cpu_scaling,
    geometry_conditions,
    geometry_stages,
    hunyuan_memory,
    peak_memory,
    product_path,
    trellis2_parity,
    trellis2_speed,
    trellis_end_to_end,
    trellis_parity,
    trellis_speed,
)

# What callers (and tests) read from here besides markdown() and main().
__all__ = [
    "NOT_LIKE_FOR_LIKE",
    "RULES",
    "Comparison",
    "comparisons",
    "cpu_before_after",
    "hunyuan_memory",
    "main",
    "markdown",
    "trellis2_parity",
    "trellis2_speed",
    "trellis_parity",
    "trellis_speed",
    "triposr_same_settings",
]  # fmt: skip

PLOTS = RESULTS / "plots"


def markdown(
    found: list[Comparison],
    memory: list[tuple[str, float, float]],
    geometry: tuple[list[str], list[float], dict[str, float]] | None,
) -> str:
    lines = [
        "# Benchmark report",
        "",
        "Made by `benchmarks/report.py` from the JSON files in this folder; rerun a "
        "benchmark, then the report.",
        "",
    ]
    if found:
        lines += [
            "## Ours against upstream",
            "",
            "The rules every comparison must meet before its ratio is one we claim:",
            "",
            *[f"{number}. {rule}" for number, rule in enumerate(RULES, 1)],
            "",
            f'A committed comparison that breaks them is kept but marked "{NOT_LIKE_FOR_LIKE}":'
            " its ratio is in brackets and is not a claim.",
            "",
            "![stage times](plots/speed.png)",
            "",
            "| comparison | ours s | upstream s | ratio | status | conditions | output agreement"
            " | file |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c.title} | {sum(c.ours):.3f} | {sum(c.upstream):.3f} | "
            + (f"{c.speedup:.2f}x" if c.like_for_like else f"({c.speedup:.2f}x)")
            + f" | {c.status} | {c.conditions} | {c.agreement} | `{c.source}` |"
            for c in found
        ]
        lines.append("")
        flawed = [c for c in found if not c.like_for_like]
        if flawed:
            lines += ["### What is wrong with the marked comparisons", ""]
            for c in flawed:
                lines.append(f"- **{c.title}** (`{c.source}`): " + "; ".join(c.problems) + ".")
            lines.append("")
    if memory:
        lines += [
            "## Peak GPU memory",
            "",
            "![peak memory](plots/memory.png)",
            "",
            "| job | peak GiB | target GiB |",
            "|---|---|---|",
        ]
        lines += [f"| {job} | {peak:.1f} | {target:.0f} |" for job, peak, target in memory]
        lines.append("")
    if geometry:
        stages, ours, reference = geometry
        lines += [
            "## Geometry pipeline (CPU)",
            "",
            f"Conditions: {geometry_conditions()}",
            "",
            "![geometry](plots/geometry.png)",
            "",
            "| stage | ours s |",
            "|---|---|",
        ]
        lines += [f"| {s} | {t:.3f} |" for s, t in zip(stages, ours, strict=True)]
        lines += ["", "| reference tool, same stage | s |", "|---|---|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in reference.items()]
        lines += [
            "",
            "The reference tools are each timed once (one sample) after our runs; the rows"
            ' marked "2-core reference" are the issue\'s figures from another machine and run:'
            " a scale, not a like-for-like comparison.",
            "",
        ]
    lines += cpu_scaling()
    lines += trellis_parity()
    lines += trellis2_parity()
    lines += trellis_end_to_end()
    lines += product_path()
    lines += gpu_geometry()
    lines += device_steps()
    lines += first_job()
    lines += trellis_speed()
    lines += trellis2_speed()
    lines += hunyuan_memory()
    lines += cpu_before_after()
    return "\n".join(lines)


def main() -> None:
    PLOTS.mkdir(parents=True, exist_ok=True)
    found, memory, geometry = comparisons(), peak_memory(), geometry_stages()
    if found:
        draw_comparisons(found, PLOTS / "speed.png")
    if memory:
        draw_memory(memory, PLOTS / "memory.png")
    if geometry:
        draw_geometry(*geometry, PLOTS / "geometry.png")
    (RESULTS / "report.md").write_text(markdown(found, memory, geometry))
    print(f"{'comparison':58s} {'ours s':>8s} {'upstream s':>11s} {'speed-up':>9s}")
    for c in found:
        print(
            f"{c.title:58s} {sum(c.ours):8.3f} {sum(c.upstream):11.3f} {c.speedup:8.2f}x"
            f"  {c.status}"
        )
    for job, peak, target in memory:
        print(f"peak memory {job:46s} {peak:8.1f} GiB (target {target:.0f})")
    print(f"wrote {RESULTS / 'report.md'} and {PLOTS}/")


if __name__ == "__main__":
    main()
