"""The benchmark report's Markdown sections, one function per committed result family."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.reporting.common import RESULTS, load_result, span


def peak_memory() -> list[tuple[str, float, float]]:
    """(job, peak GiB, the issue's target GiB) for every GPU result that records a peak."""
    rows: list[tuple[str, float, float]] = []
    if data := load_result("sf3d_h100_bfloat16.json"):
        rows.append(("SF3D (bf16)", data["ours"]["peak_vram_mb"] / 1024, 8.0))
    if data := load_result("triposr_h100.json"):
        best = [r for r in data["rows"] if r["variant"] == "ours bfloat16, chunk 262144, mc auto"]
        if best:
            rows.append(("TripoSR (bf16)", best[0]["peak_vram_mb"] / 1024, 8.0))
    shape, texture = (
        load_result("hunyuan3d_mini_standard_h100.json"),
        load_result("hunyuan3d_texture_h100.json"),
    )
    if shape and texture:
        peak = max(shape["ours"]["shape_total"]["peak_vram_mb"], texture["peak_vram_mb"])
        rows.append(("Hunyuan3D-2mini shape + texture", peak / 1024, 24.0))
    if data := load_result("text_to_3d_h100.json"):
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
    data = load_result("geometry_pipeline.json")
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


def cpu_before_after() -> list[str]:
    """Two source trees alternated on the same cores: postprocess_ab_*.json, export_glb_*.json."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("postprocess_ab_*.json")):
        data = json.loads(path.read_text())
        before, after = data["results"]["before"], data["results"]["after"]
        lines += [f"## `postprocess` before / after (`{path.name}`)", "", data["conditions"]
                  + f". {data.get('note', '')}", "", "| | before | after |", "|---|---|---|",
                  f"| wall s | {span(before['wall_s'])} | {span(after['wall_s'])} |",
                  f"| CPU s | {span(before['cpu_s'])} | {span(after['cpu_s'])} |",
                  f"| same quality figures | {data['same_quality']} | |", ""]  # fmt: skip
    pairs: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("export_glb_*_*.json")):
        stem, _, side = path.stem.rpartition("_")
        pairs.setdefault(stem, {})[side] = json.loads(path.read_text())
    for stem, sides in pairs.items():
        if {"before", "after"} <= sides.keys():
            before, after = sides["before"], sides["after"]
            lines += [f"## GLB export before / after (`{stem}_*.json`)", "",
                      after["conditions"] + ".", "", "| | before | after |", "|---|---|---|",
                      f"| wall s | {span(before['wall_s'])} | {span(after['wall_s'])} |",
                      f"| CPU s | {span(before['cpu_s'])} | {span(after['cpu_s'])} |",
                      f"| GLB bytes | {before['glb_bytes']:,} | {after['glb_bytes']:,} |",
                      f"| same pixels | {before.get('same_pixels')} | {after['same_pixels']} |",
                      ""]  # fmt: skip
    return lines


def trellis_speed() -> list[str]:
    """Our TRELLIS flows: plain, exact savings, compiled blocks (trellis_fast_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("trellis_fast_*.json")):
        data = json.loads(path.read_text())
        lines += [f"## TRELLIS flow sampling, ours (`{path.name}`, {data.get('gpu', '?')})", "",
                  f"Full-size random weights built on the device, {data['dtype']} as stored,"
                  f" {data['voxels']} voxels = {data['tokens_after_downsample']} tokens,"
                  f" {data['steps']} steps with CFG; {data['repeats']} repeats after a warm-up."
                  " `plain`: the code before the exact savings; `fast`: condition K/V once per"
                  " run, the zero negative's constant cross-attention, fp16 LayerNorm input;"
                  " `fast_compiled`: the same with torch.compile'd blocks (the product's CUDA"
                  " default).", "",
                  "| mode | SS sampling s | SLat sampling s | both s | x plain | max rel vs plain"
                  " (SS / SLat) | first run s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for mode, row in data["modes"].items():
            lines.append(f"| {mode} | {span(row['ss_sample_s'])} | {span(row['slat_sample_s'])}"
                         f" | {span(row['flows_s'])} | {row['speedup_vs_plain']:.2f}x |"
                         f" {row['ss_max_rel_vs_plain']:.1e} / {row['slat_max_rel_vs_plain']:.1e}"
                         f" | {row['warmup_s']:.1f} |")  # fmt: skip
        lines += ["", "Against upstream: the same-run pair is the parity run's timing table above"
                  " (`trellis_parity_full_h200.json`, ours compiled as the product runs).",
                  ""]  # fmt: skip
    return lines


# TRELLIS.2's README (NVIDIA H100): seconds per pipeline; token counts are not published.
TRELLIS2_PUBLISHED = {"512": 3.0, "1024_cascade": 17.0}


def trellis2_speed() -> list[str]:
    """TRELLIS.2's pipeline stages (trellis2_h200*.json) beside upstream's published figures."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("trellis2_h200*.json")):
        data = json.loads(path.read_text())
        lines += [f"## TRELLIS.2, ours (`{path.name}`)", "",
                  f"Full-size random weights ({data.get('weights', 'written, then loaded')}),"
                  f" occupancy: {data.get('occupancy', 'random decoder, top 20,000 voxels')};"
                  f" {data['runs']} runs after a warm-up, median (min-max). Upstream's figures"
                  " are its README's for an H100 (token counts unpublished): a scale, not a"
                  " like-for-like comparison.", ""]  # fmt: skip
        for kind, entry in data["types"].items():
            stages = entry["stages_s"]
            lines += [f"**{kind}**: {entry['structure_voxels']} tokens, grid"
                      f" {entry['resolution']}, {entry['faces']} faces, peak VRAM"
                      f" {entry.get('peak_vram_gb', 0):.1f} GiB; upstream published"
                      f" ~{TRELLIS2_PUBLISHED.get(kind, float('nan')):.0f} s.", "",
                      "| stage | s |", "|---|---|"]  # fmt: skip
            lines += [f"| {stage} | {span(row)} |" for stage, row in stages.items()]
            lines.append("")
    return lines


def hunyuan_memory() -> list[str]:
    """Hunyuan3D octree decoding's peak memory per chunk size (hunyuan3d_*_memory.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("hunyuan3d_*_memory.json")):
        data = json.loads(path.read_text())
        runs = {f"chunks {data['our_chunks'][0]}": data["ours"]}
        runs |= {k.replace("ours_chunks_", "chunks "): v for k, v in data.items()
                 if k.startswith("ours_chunks_")}  # fmt: skip
        lines += [
            f"## Hunyuan3D-2 mini octree decoding memory (`{path.name}`, {data['device']})",
            "",
            f"{data['variant']}, octree {data['octree_resolution']},"
            f" {data['repeats']} repeats after a warm-up job. Upstream's peak on this job"
            " was 4,445 MB (hy3dgen 2.0.2, its default dense decoder, 8,000-point chunks,"
            " H100, `hunyuan3d_mini_turbo_hier_h100.json`; its octree decoder rounds the"
            " fine spacing to 0, so it is not a like-for-like reference). Before this"
            " change ours peaked at 7,006 MB.",
            "",
            "| ours | volume decoding s | peak MB | above start MB |",
            "|---|---|---|---|",
        ]
        for name, run in runs.items():
            row = run["volume_decoding"]
            lines.append(f"| {name} | {row['seconds']:.3f} ({row['min_seconds']:.3f}-"
                         f"{row['max_seconds']:.3f}) | {row['peak_vram_mb']:.0f} |"
                         f" {row['peak_above_start_mb']:.0f} |")  # fmt: skip
        lines.append("")
    return lines


def geometry_conditions() -> str:
    data = load_result("geometry_pipeline.json") or {}
    machine, runs = data.get("machine", {}), data.get("ours", {}).get("total_s_runs", [])
    load = machine.get("load_average")
    return (
        f"one process on {machine.get('cpus', '?')} CPUs"
        + (f" (load average {load[0]:.1f} at the end)" if load else "")
        + f", a warm-up run then {len(runs)} runs, stage medians"
        + (f"; total {min(runs):.2f}-{max(runs):.2f} s" if runs else "")
    )


def cpu_scaling() -> list[str]:
    """The cpu_postprocess.py results committed here (``cpu_postprocess*.json``), if any."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("cpu_postprocess*.json")):
        data = json.loads(path.read_text())
        if not lines:
            lines += ["## `dreamcad-backend postprocess` on N cores (CPU)", ""]
        lines += [
            f"`{path.name}` (code {data.get('commit', 'not recorded')}): {data['conditions']};"
            f" {data['repeats']} repeats on {data['machine']['cpus']} CPUs."
            + (f" {data['note']}." if data.get("note") else ""),
            "",
            "| cores | wall s median (min-max) | CPU s median | decimate s | bake s | same asset |",
            "|---|---|---|---|---|---|",
        ]
        for row in data["results"]:
            wall, stages = row["wall_s"], row["stages_s_median"]
            lines.append(
                f"| {row['threads']} | {wall['median']:.2f} ({wall['min']:.2f}-{wall['max']:.2f})"
                f" | {row['cpu_s']['median']:.2f} | {stages.get('decimate', 0):.2f}"
                f" | {stages.get('bake', 0):.2f} | {row['same_asset_every_run']} |"
            )
        speedups = ", ".join(f"{k}: {v:.2f}x" for k, v in data["speedup_median_wall"].items())
        lines += ["", f"Speed-up (median wall): {speedups or '-'}.", ""]
    return lines


def product_path() -> list[str]:
    """The product's own path, serve + submit with the model warm (product_path_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("product_path_*.json")):
        data = json.loads(path.read_text())
        request = data["request"]
        lines += [f"## The product's path: serve + submit, model warm (`{path.name}`)", "",
                  f"{data['device_name']} ({data['device']}); a real `dreamcad-backend serve`"
                  f" and protocol client, one job at a time, {request['faces']} faces,"
                  f" {request['texture_size']} px; a warm-up job, then {data['runs']} jobs,"
                  " median (min-max) s. Model = load + generate; post = the pipeline's stages"
                  " (GLB writing among them); other = the rest of the wall (queue, keeping the"
                  " raw output, progress, transfer).", "",
                  "| model | wall | model | post | GLB | other | peak VRAM MB | faces | first job"
                  " | distinct GLBs |\n|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, entry in data["models"].items():
            if "error" in entry:
                lines.append(f"| {name} | failed: {entry['error']} | | | | | | | | |")
                continue
            s = entry["summary"]
            cells = " | ".join(
                span(s[k])
                for k in ("wall_s", "model_s", "postprocess_s", "glb_s", "overhead_s")
            )
            lines.append(f"| {name} | {cells} | {s['peak_vram_mb'] or '-'} |"
                         f" {', '.join(f'{f:,}' for f in s['faces'])} |"
                         f" {entry['warmup']['wall_s']:.2f} |"
                         f" {s.get('distinct_assets', 'not recorded')} |")  # fmt: skip
        if data.get("kernels_ready_s") is not None:
            lines += ["", f"The server's start-up kernel warm-up took {data['kernels_ready_s']}"
                      " s; the first job arrived during it (the warm-up gives way to jobs),"
                      " the timed jobs after it."]  # fmt: skip
        if data.get("note"):
            lines += ["", data["note"]]
        lines.append("")
    return lines


def trellis_parity() -> list[str]:
    """TRELLIS against upstream on identical full-size weights (trellis_parity_full_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("trellis_parity_full_*.json")):
        data = json.loads(path.read_text())
        lines += [
            f"## TRELLIS against upstream (`{path.name}`, {data.get('gpu', '?')})",
            "",
            data.get("conditions", ""),
            "",
            "| stage | max rel | detail | pass |",
            "|---|---|---|---|",
        ]
        for name, row in data["stages"].items():
            rel = f"{row['max_rel']:.1e}" if "max_rel" in row else "-"
            detail = ", ".join(
                f"{k}={v}"
                for k, v in row.items()
                if k
                in (
                    "count",
                    "reference_count",
                    "vertices",
                    "faces",
                    "faces_equal",
                    "colours_max_rel",
                )
            )
            lines.append(f"| {name} | {rel} | {detail} | {row['pass']} |")
        if data.get("mesh_note"):
            lines += ["", data["mesh_note"]]
        ours = data.get("timing", {}).get("parts", {})
        theirs = data.get("upstream_timing", {}).get("parts", {})
        lines += [
            "",
            f"Timing, {data.get('timing', {}).get('dtype', '')}, "
            f"{data.get('timing', {}).get('repeats', '?')} repeats after a warm-up:",
            "",
            "| part | ours s median (min-max) | upstream s median (min-max) |",
            "|---|---|---|",
        ]
        for part, row in ours.items():
            other = theirs.get(part)
            cell = (
                f"{other['median_s']:.3f} ({other['min_s']:.3f}-{other['max_s']:.3f})"
                if other
                else "-"
            )
            lines.append(
                f"| {part} | {row['median_s']:.3f} ({row['min_s']:.3f}-"
                f"{row['max_s']:.3f}) | {cell} |"
            )
        if "network" in ours and "network" in theirs:
            mode = "compiled" if data.get("timing", {}).get("compiled_blocks") else "eager"
            ratio = theirs["network"]["median_s"] / ours["network"]["median_s"]
            lines += ["", f"Network time, upstream / ours: {ratio:.2f}x (ours {mode})."]
        lines += [
            "",
            f"Peak VRAM: ours {data.get('timing', {}).get('peak_vram_gb', 0):.2f} GB,"
            f" upstream {data.get('upstream_timing', {}).get('peak_vram_gb', 0):.2f} GB.",
            "",
        ]
    return lines


def trellis_end_to_end() -> list[str]:
    """TRELLIS image -> GLB with the job's own geometry path (trellis_h200_pipeline.json)."""
    path = RESULTS / "trellis_h200_pipeline.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if "end_to_end_s" not in data:
        return []
    stages = data["stages_s"]
    ends = data["end_to_end_s"]
    model = ", ".join(
        f"{k} {stages[k]:.3f}"
        for k in ("condition", "structure", "latent", "decode", "mesh", "hand_over")
    )
    parts = {k.removeprefix("pipeline."): v for k, v in stages.items()
             if k.startswith("pipeline.") and k.count(".") == 1}  # fmt: skip
    geometry = ", ".join(f"{k} {v:.3f}" for k, v in parts.items() if k != "total")
    return [f"## TRELLIS image -> game-ready GLB (`{path.name}`, {data['device']})", "",
            f"Full-size random weights ({data['dtype']}, flows compiled as the product runs on"
            f" CUDA), {data['occupied_voxels']} occupied voxels; the random decoders make a"
            f" {data['faces']:,}-face mesh (an upper bound: a real asset's surface is smoother),"
            f" -> {data['glb_faces']:,} faces, the job's default options on the GPU path."
            f" {ends['runs']} runs after a warm-up; the run of median model time:", "",
            f"- model {stages['total']:.3f} s ({model})",
            f"- geometry {stages['pipeline']:.3f} s ({geometry})",
            f"- **end to end {ends['median_s']:.2f} s** ({ends['min_s']:.2f}-{ends['max_s']:.2f});"
            f" peak VRAM {stages['peak_memory_mb'] / 1024:.1f} GiB", *_earlier_end_to_end(),
            ""]  # fmt: skip


def _earlier_end_to_end() -> list[str]:
    """Earlier runs of the same benchmark kept beside it (trellis_h200_pipeline_*.json)."""
    lines = []
    for path in sorted(RESULTS.glob("trellis_h200_pipeline_*.json")):
        ends = json.loads(path.read_text()).get("end_to_end_s")
        if ends:
            lines.append(f"- earlier: `{path.name}` {ends['median_s']:.2f} s"
                         f" ({ends['min_s']:.2f}-{ends['max_s']:.2f})")  # fmt: skip
    return lines


def trellis2_parity() -> list[str]:
    """TRELLIS.2 against upstream's code, full size, one process (trellis2_parity_full_*.json)."""
    lines: list[str] = []
    for path in sorted(RESULTS.glob("trellis2_parity_full_*.json")):
        data = json.loads(path.read_text())
        lines += [f"## TRELLIS.2 against upstream (`{path.name}`, {data.get('gpu', '?')})", "",
                  f"Upstream microsoft/TRELLIS.2 {data['upstream'][:7]} (outside the repo) and ours"
                  f" built in one process on the device with the same full-size random weights"
                  f" (ours seeded per key, loaded strictly into upstream's modules),"
                  f" {data['dtype']},"
                  f" TF32 {'on' if data['tf32'] else 'off'}; upstream's sparse conv on spconv"
                  f" {data['spconv']}, its sparse attention through the per-segment SDPA stand-in"
                  f" for xformers. Tokens: {data['tokens']}. Pass: max rel <="
                  f" {data['tolerance_rel']:g}.", "",
                  "| stage | compared (max rel) | pass |", "|---|---|---|"]  # fmt: skip
        for name, row in data["stages"].items():
            checks = row.get("compare", {}).items()
            compared = ", ".join(f"{k} {v['max_rel']:.1e}" for k, v in checks)
            if "mesh" in row:
                mesh = row["mesh"]
                compared += (f"; mesh {mesh['vertices'][0]} / {mesh['vertices'][1]} vertices,"
                             f" {mesh['faces'][0]} / {mesh['faces'][1]} faces, same faces"
                             f" {mesh['same_faces']}")  # fmt: skip
            lines.append(f"| {name} | {compared} | {row['pass']} |")
        lines += ["", f"All pass: {data['all_pass']}; peak VRAM of the run"
                  f" {data['peak_vram_gb']:.1f} GB.", ""]  # fmt: skip
    return lines
