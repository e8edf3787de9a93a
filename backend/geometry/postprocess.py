"""Run the whole pipeline on a mesh file a user brings: ``dreamcad-backend postprocess``.

Reads the mesh (mesh_io), runs :func:`run_pipeline`, writes the asset, and next to it the
manifest (``<out>.json``) and the preview (``<out>.preview.png``). The output format follows the
options; an OBJ result is a zip of obj + mtl + png files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from backend.cancellation import CancelToken
from backend.geometry import mesh_input, mesh_io
from backend.geometry.pipeline import PipelineOptions, PipelineResult, StageProgress, run_pipeline


def postprocess_file(
    path: Path | str,
    out_path: Path | str,
    options: PipelineOptions | None = None,
    progress: StageProgress | None = None,
    cancel: CancelToken | None = None,
) -> PipelineResult:
    """Read ``path``, make the asset ``options`` ask for, write it to ``out_path``."""
    options = options or PipelineOptions()
    out_path = Path(out_path)
    path = Path(path)
    if path.suffix.lower() == ".glb" and path.is_file():
        # Every texture (atlased) and flat material colour, as a sent mesh is read.
        raw = mesh_input.read_glb(path.read_bytes(), "mesh", path.stem)
    else:
        raw = mesh_io.load_mesh(path)
    if options.name == PipelineOptions.name and raw.name:
        options = dataclasses.replace(options, name=raw.name)
    result = run_pipeline(raw, options, progress, cancel)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(result.asset)
    manifest = {"source": str(path), "output": str(out_path), **result.manifest()}
    out_path.with_name(out_path.name + ".json").write_text(json.dumps(manifest, indent=2))
    out_path.with_name(out_path.stem + ".preview.png").write_bytes(result.preview)
    return result
