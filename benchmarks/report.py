"""Benchmark report: the committed results as charts and one Markdown page.

Reads the JSON files the benchmark scripts wrote into benchmarks/results/, draws our stage
times against the upstream implementations measured in the same runs, peak GPU memory against
the issues' targets, and the geometry pipeline's stages against the reference tools, then
writes benchmarks/results/report.md with the PNGs beside it in benchmarks/results/plots/.
Files that are missing are left out of the report, never guessed.

    .venv/backend/bin/pip install -e .[bench]     # matplotlib
    .venv/backend/bin/python benchmarks/report.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark boxes
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
PLOTS = RESULTS / "plots"
OURS, UPSTREAM = "#2b7bba", "#b0b0b0"


@dataclass
class Comparison:
    """Stage seconds of ours and upstream on the same GPU run, same weights and inputs."""

    title: str
    source: str
    stages: list[str]
    ours: list[float]
    upstream: list[float]

    @property
    def speedup(self) -> float:
        return sum(self.upstream) / sum(self.ours)


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def comparisons() -> list[Comparison]:
    """Every ours-against-upstream pair found in the results."""
    found: list[Comparison] = []
    for dtype in ("bfloat16", "float32"):
        if data := _load(f"sf3d_h100_{dtype}.json"):
            found.append(
                Comparison(
                    f"SF3D encode ({dtype})",
                    f"sf3d_h100_{dtype}.json",
                    ["encode"],
                    [data["ours"]["stages_s"]["encode"]],
                    [data["upstream"]["stages_s"]["encode"]],
                )
            )
    if data := _load("triposr_h100.json"):
        rows = {row["variant"]: row["seconds"] for row in data["rows"]}
        ours = rows.get("ours bfloat16, chunk 262144, mc auto")
        upstream = rows.get("upstream float32, chunk 8192")
        if ours and upstream:
            stages = ["preprocess", "encode", "field"]
            found.append(
                Comparison(
                    "TripoSR, each at its defaults",
                    "triposr_h100.json",
                    stages,
                    [ours[s] for s in stages],
                    [upstream[s] for s in stages],
                )
            )
    for case in ("turbo_hier", "turbo_flashvdm", "standard"):
        if data := _load(f"hunyuan3d_mini_{case}_h100.json"):
            stages = ["conditioning", "sampling", "volume_decoding", "marching_cubes"]
            found.append(
                Comparison(
                    f"Hunyuan3D-2mini {data['variant']} ({data['decoding']}) vs hy3dgen",
                    f"hunyuan3d_mini_{case}_h100.json",
                    stages,
                    [data["ours"][s]["seconds"] for s in stages],
                    [data["hy3dgen"][s]["seconds"] for s in stages],
                )
            )
    for dtype in ("", "_fp32"):
        if data := _load(f"text_to_3d_h100{dtype}.json"):
            path = data["paths"]["mvdream"]
            found.append(
                Comparison(
                    f"MVDream 4-view sampling ({data['dtype'].removeprefix('torch.')}) vs mvdream",
                    f"text_to_3d_h100{dtype}.json",
                    ["views_sampling"],
                    [path["views_sampling"]["seconds"]],
                    [path["views_sampling(upstream)"]["seconds"]],
                )
            )
    return found


def peak_memory() -> list[tuple[str, float, float]]:
    """(job, peak GiB, the issue's target GiB) for every GPU result that records a peak."""
    rows: list[tuple[str, float, float]] = []
    if data := _load("sf3d_h100_bfloat16.json"):
        rows.append(("SF3D (bf16)", data["ours"]["peak_vram_mb"] / 1024, 8.0))
    if data := _load("triposr_h100.json"):
        best = [r for r in data["rows"] if r["variant"] == "ours bfloat16, chunk 262144, mc auto"]
        if best:
            rows.append(("TripoSR (bf16)", best[0]["peak_vram_mb"] / 1024, 8.0))
    shape, texture = (
        _load("hunyuan3d_mini_standard_h100.json"),
        _load("hunyuan3d_texture_h100.json"),
    )
    if shape and texture:
        peak = max(shape["ours"]["shape_total"]["peak_vram_mb"], texture["peak_vram_mb"])
        rows.append(("Hunyuan3D-2mini shape + texture", peak / 1024, 24.0))
    if data := _load("text_to_3d_h100.json"):
        peak = max(
            v["peak_vram_mb"]
            for p in data["paths"].values()
            for v in p.values()
            if isinstance(v, dict) and "peak_vram_mb" in v
        )
        rows.append(("text -> textured GLB (fp16)", peak / 1024, 24.0))
    return rows


def geometry_stages() -> tuple[list[str], list[float], dict[str, float]] | None:
    """Our pipeline's stages (s) and the reference tools' times for the same stage (s)."""
    data = _load("geometry_pipeline.json")
    if data is None:
        return None
    stages = ["clean", "decimate", "uv", "bake", "export", "preview"]
    ours = [data["ours"]["stages_s"][s] for s in stages]
    reference = {
        "decimate: fast-simplification": data["reference_same_run"]["fast_simplification"].get(
            "seconds"
        ),
        "decimate: pymeshlab (2-core reference)": data["issue_reference_s"]["pymeshlab_decimation"],
        "uv: xatlas": data["reference_same_run"]["xatlas"].get("seconds"),
        "bake: numpy nearest vertex": data["reference_same_run"]["numpy_nearest_bake_2048"].get(
            "seconds"
        ),
        "bake: Blender Cycles (2-core reference)": data["issue_reference_s"]["cycles_bake_2048"],
    }
    return stages, ours, {k: v for k, v in reference.items() if v is not None}


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
        ax.set_title(f"{comp.title}: {comp.speedup:.2f}x", fontsize=10, loc="left")
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
            "## Ours against upstream (same GPU run, same weights and inputs)",
            "",
            "![stage times](plots/speed.png)",
            "",
            "| comparison | ours s | upstream s | speed-up | file |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c.title} | {sum(c.ours):.3f} | {sum(c.upstream):.3f} | "
            f"{c.speedup:.2f}x | `{c.source}` |"
            for c in found
        ]
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
            "![geometry](plots/geometry.png)",
            "",
            "| stage | ours s |",
            "|---|---|",
        ]
        lines += [f"| {s} | {t:.3f} |" for s, t in zip(stages, ours, strict=True)]
        lines += ["", "| reference tool, same stage | s |", "|---|---|"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in reference.items()]
        lines.append("")
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
        print(f"{c.title:58s} {sum(c.ours):8.3f} {sum(c.upstream):11.3f} {c.speedup:8.2f}x")
    for job, peak, target in memory:
        print(f"peak memory {job:46s} {peak:8.1f} GiB (target {target:.0f})")
    print(f"wrote {RESULTS / 'report.md'} and {PLOTS}/")


if __name__ == "__main__":
    main()
