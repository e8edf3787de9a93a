"""The report's sections on the geometry pipeline's GPU path: its stages against the CPU path,
single GPU steps against plain torch, and a fresh process's first job."""

from __future__ import annotations

import json

from benchmarks.reporting.common import RESULTS, span


def gpu_geometry() -> list[str]:
    """The geometry pipeline's torch path against numba on one box (geometry_gpu_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("geometry_gpu_*.json")):
        data = json.loads(path.read_text())
        paths = {p["path"]: p for p in data["paths"]}
        names = list(paths)
        lines += [
            f"## Geometry pipeline on the GPU (`{path.name}`)",
            "",
            f"{data['machine'].get('gpu', '?')}, {data['machine'].get('cpus', '?')} CPUs;"
            f" {data['input_faces']} triangles -> {data['target_faces']} faces,"
            f" {data['texture_size']} px maps; {data['warm_up']} warm-up, {data['runs']}"
            f" runs, median (min-max). Targets: {data['targets']}.",
            "",
            "| stage | " + " | ".join(f"{n} on {paths[n]['device']}" for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for stage in paths[names[0]]["stages"]:
            cells = []
            for n in names:
                row = paths[n]["stages"].get(stage)
                cells.append(
                    f"{row['median_s']:.3f} ({row['min_s']:.3f}-{row['max_s']:.3f})" if row else "-"
                )
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        for figure in paths[names[0]].get("quality", {}):
            lines.append(
                f"| {figure} | "
                + " | ".join(str(paths[n].get("quality", {}).get(figure, "-")) for n in names)
                + " |"
            )
        if any("distinct_assets" in paths[n] for n in names):  # recorded from session 13 on
            lines.append("| distinct GLBs over the runs (1: repeatable) | "
                         + " | ".join(str(paths[n].get("distinct_assets", "-")) for n in names)
                         + " |")  # fmt: skip
        if data.get("note"):
            lines += ["", data["note"]]
        lines.append("")
    return lines


def device_steps() -> list[str]:
    """Single GPU steps, plain torch against ours, same answer beside each (device_steps_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("device_steps_*.json")):
        data = json.loads(path.read_text())
        gathers = [(f"gather of {g['picks']:,} rows {g['rows']}", g) for g in data["gathers"]]
        dilation = data["dilation"]
        rows = [
            (f"read-back of {data['read_back']['bytes'] / 1e6:.0f} MB", data["read_back"]),
            *gathers,
            (f"dilation, {dilation['rounds']} rounds of {dilation['planes']} planes,"
             f" {dilation['texels']} texels", dilation),
        ]  # fmt: skip
        lines += [
            f"## GPU steps of the bake and the copies (`{path.name}`)",
            "",
            f"{data['machine'].get('gpu', '?')}, torch {data['machine'].get('torch', '?')};"
            f" {data['repeats']} repeats after a warm-up, ms, median (min-max).",
            "",
            "| step | plain torch | ours | same answer |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {span(row['plain_ms'])} | {span(row['ours_ms'])} | {row['same']} |"
            for name, row in rows
        ]
        lines.append("")
    return lines


def first_job() -> list[str]:
    """A fresh backend process's first job, with and without the start-up warm-up
    (first_job_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("first_job_*.json")):
        data = json.loads(path.read_text())
        modes = data["modes"]
        lines += [
            f"## First job of a fresh process (`{path.name}`)",
            "",
            f"{data['machine'].get('gpu') or data['device']}; {data['input_faces']} triangles ->"
            f" {data['target_faces']} faces, {data['texture_size']} px; {data['runs']} fresh"
            f" processes per mode, compile caches {data['caches']}; median (min-max). `none`:"
            " no device warm-up (the first job compiles); `warm`: `serve`'s start-up warm-up"
            " first; `during`: the first job arrives as the warm-up starts (it gives way to"
            " the job)." + ("" if data["meets_repeat_rule"] else " Fewer than 5 runs: a check."),
            "",
            "| figure | " + " | ".join(modes) + " |",
            "|---" * (len(modes) + 1) + "|",
        ]
        for row in ("device_warm_up_s", "first_job_s", "first_job_frames_compiled",
                    "second_job_s"):  # fmt: skip
            cells = [span(modes[m][row]) if row in modes[m] else "-" for m in modes]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines += [f"| distinct GLBs over all jobs | {data['distinct_assets']} |"
                  + " |" * (len(modes) - 1), ""]  # fmt: skip
    return lines
