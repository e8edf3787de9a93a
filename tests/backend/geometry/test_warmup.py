"""The warm-up compiles every kernel a job uses, so no job pays numba's compile time.

The check: after ``warm_up``, run the pipeline on other inputs (model-like marching-cubes meshes
in float64 / int32 / strided arrays, every colour source, OBJ and GLB output) and assert that no
compiled kernel gained a signature, i.e. nothing was compiled inside the "job".
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
from numba.core.registry import CPUDispatcher

import backend.geometry
from backend.geometry import tolerances, uv_pack
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import PaintedViews, RawAsset, orthographic_camera
from backend.geometry.warmup import warm_up
from tests.support.analytic_meshes import (
    analytic_color,
    blob_field,
    marching_cubes_mesh,
    sphere_field,
)


def _signatures() -> dict[str, int]:
    counts = {}
    for info in pkgutil.iter_modules(backend.geometry.__path__):
        module = importlib.import_module(f"backend.geometry.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                counts[f"{module.__name__}.{name}"] = len(obj.signatures)
    return counts


def _material(points: np.ndarray) -> np.ndarray:
    return np.tile(np.float32([0.4, 0.7]), (len(points), 1))


def test_after_warm_up_no_job_compiles_a_kernel(monkeypatch) -> None:
    seen: list[str] = []
    warm_up(lambda label, seconds: seen.append(label))
    assert len(seen) == 4
    before = _signatures()
    assert sum(before.values()) >= 10  # the entry kernels are compiled, not merely found

    # The jobs below are small: let them take the two-thread decimation of large meshes too.
    monkeypatch.setattr(tolerances, "PARALLEL_SWEEP_FACES", 10_000)
    vertices, faces = marching_cubes_mesh(blob_field, 72)
    colours = analytic_color(vertices).astype(np.float64)  # a model handing over float64
    jobs = [
        (RawAsset(vertices.astype(np.float64), faces.astype(np.int32), vertex_colors=colours),
         PipelineOptions(target_faces=3_000, texture_size=512)),
        (RawAsset(vertices, faces, color_field=analytic_color, material_field=_material),
         PipelineOptions(target_faces=1_500, texture_size=256, output_format="obj")),
    ]  # fmt: skip
    sphere_v, sphere_f = marching_cubes_mesh(sphere_field, 40)
    uvs = np.stack([sphere_v[:, 0], sphere_v[:, 1]], 1)[:, ::-1] * 0.5 + 0.5  # strided view
    texture = np.zeros((32, 32, 4), np.uint8)[:, :, :3]  # a strided RGB view of an RGBA image
    jobs.append(
        (RawAsset(sphere_v, sphere_f, uvs=uvs, texture=texture),
         PipelineOptions(target_faces=1_000, texture_size=256, keep_uvs=True))
    )  # fmt: skip
    top = orthographic_camera(np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]), np.zeros(3), 20.0,
                              (24.0, 24.0))  # fmt: skip
    painted = PaintedViews(np.full((1, 48, 48, 3), 90, np.uint8), top[None], np.ones(1))
    jobs.append(
        (RawAsset(sphere_v.astype(np.float64), sphere_f, views=painted),
         PipelineOptions(target_faces=1_000, texture_size=256))
    )  # fmt: skip
    inner_v, inner_f = marching_cubes_mesh(lambda p: sphere_field(p, 0.3), 24)
    jobs.append(
        (RawAsset(np.concatenate([vertices, inner_v]).astype(np.float64),
                  np.concatenate([faces, inner_f + len(vertices)]).astype(np.int32)),
         PipelineOptions(target_faces=2_000, texture_size=256, lods=3))
    )  # fmt: skip
    for raw, options in jobs:
        result = run_pipeline(raw, options)
        assert result.faces > 0
    monkeypatch.setattr(uv_pack, "MAX_SHAPE_CHARTS", 0)  # as if cut into many charts
    assert run_pipeline(*jobs[0]).faces > 0

    after = _signatures()
    compiled_in_jobs = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert compiled_in_jobs == {}, f"kernels compiled inside a job: {compiled_in_jobs}"
