"""The batch script's ``--compare MODEL,MODEL,...``: each input to every model, side by side.

For each prompt or image it runs the extension's own ``dreamcad.compare`` (which waits in
background mode), one row per input, the rows one behind the other; then writes the figures of
every job as a table, ``<out>.compare.json`` and ``<out>.compare.csv`` beside the .blend (input,
model, job, state, seconds, faces, peak VRAM, the GLB file, the error). Each model's GLB is the
result file the add-on saved in its output folder (``--results``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

COLUMNS = ("input", "model", "job_id", "state", "seconds", "faces", "peak_vram_mb", "glb",
           "error")  # fmt: skip


def compare_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if len(models) < 2 or len(set(models)) != len(models):
        raise argparse.ArgumentTypeError(
            f"--compare needs two or more different models, got {text!r}")
    return models


def compare_all(bpy, addon, args, items: list[tuple[str, str]], row_pitch: float,
                failures: list[str]) -> list[dict]:  # fmt: skip
    """Run one compare per input; the table's rows (one per model and input)."""
    scene = bpy.context.scene
    settings = scene.dreamcad
    settings.compare.models = ",".join(args.compare)
    table: list[dict] = []
    for index, (task, value) in enumerate(items):
        settings.task = task
        settings.prompt = value if task == "text" else ""
        settings.image_source = "FILE"
        settings.image_path = value if task != "text" else ""
        scene.cursor.location = (0.0, -index * row_pitch, 0.0)
        label = value if task == "text" else Path(value).name
        before = set(addon.runtime.STATE.plans)
        try:
            bpy.ops.dreamcad.compare(wait=True, timeout_s=args.timeout)
            all_failed = False
        except RuntimeError as error:  # nothing came back for this input
            all_failed = True
            failures.append(f"{label}: {error}")
            print(f"batch: FAILED {label}: {error}", file=sys.stderr, flush=True)
        plans = [p for m, p in addon.runtime.STATE.plans.items() if m not in before]
        for plan in plans:
            row = table_row(addon, label, plan)
            table.append(row)
            print(f"batch: {label} · {row['model']}: {row['state']}, {row['seconds']} s, "
                  f"{row['faces']} faces", flush=True)
            if row["error"] and not all_failed:
                failures.append(f"{label} · {row['model']}: {row['error']}")
    return table


def table_row(addon, label: str, plan) -> dict:
    session = addon.runtime.STATE.session
    job = session.jobs.get(plan.job_id) if session and plan.job_id else None
    key = addon.client.compare.parse_key(job.request_key if job else None)
    entry = addon.client.compare.CompareEntry(key, job) if key and job else None
    glb = addon.runtime.STATE.result_files.get(plan.job_id)
    return {
        "input": label,
        "model": key.model if key else (job.model if job else ""),
        "job_id": plan.job_id,
        "state": job.state if job else "refused",
        "seconds": round(entry.seconds, 3) if entry and entry.seconds is not None else None,
        "faces": entry.faces if entry else None,
        "peak_vram_mb": entry.peak_vram_mb if entry else None,
        "glb": str(glb) if glb else "",
        "error": plan.error.message if plan.error else "",
    }


def write_table(table: list[dict], out: Path) -> tuple[Path, Path]:
    """``<out>.compare.json`` and ``.csv`` beside the .blend."""
    json_path = out.with_suffix(".compare.json")
    json_path.write_text(json.dumps(table, indent=2) + "\n")
    csv_path = out.with_suffix(".compare.csv")
    with csv_path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    return json_path, csv_path
