"""The device warm-up builds what a CUDA job compiles, so the first job on a GPU server does not.

Which devices are warmed runs everywhere; the check that a job after the warm-up compiles no
torch region needs a CUDA GPU (the CPU's numba kernels are test_warmup.py's).
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import geometry_path, torch_qem
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from backend.geometry.warmup import device_needs_warm_up, warm_up
from backend.torch_compile import COMPILE_ENV
from tests.support.analytic_meshes import (
    analytic_color,
    blob_field,
    marching_cubes_mesh,
    subdivided,
)


def test_devices_whose_jobs_run_compiled_torch_are_warmed(monkeypatch) -> None:
    monkeypatch.delenv(geometry_path.ENV_VAR, raising=False)
    monkeypatch.setenv(COMPILE_ENV, "1")  # as on a CUDA machine with Triton
    assert device_needs_warm_up("cuda")
    assert device_needs_warm_up("cuda:1")
    assert not device_needs_warm_up("cpu")  # numba: warmed in any case
    monkeypatch.setenv(geometry_path.ENV_VAR, "torch")
    assert device_needs_warm_up("cpu")  # the torch path, compiled, on the CPU
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert not device_needs_warm_up("cuda:0")  # nothing compiled: nothing to build
    monkeypatch.setenv(COMPILE_ENV, "1")
    monkeypatch.setenv(geometry_path.ENV_VAR, "numba")
    assert not device_needs_warm_up("cuda:0")  # a forced numba path compiles no torch


def _material(points: np.ndarray) -> np.ndarray:
    return np.tile(np.float32([0.4, 0.7]), (len(points), 1))


def test_after_the_device_warm_up_a_cuda_job_compiles_nothing() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from torch._dynamo.utils import counters

    from backend.torch_compile import should_compile

    if not should_compile("cuda"):
        pytest.skip("this torch does not compile on CUDA (no Triton, or DREAMCAD_COMPILE=0)")
    seen: list[str] = []
    warm_up(lambda label, seconds: seen.append(label), devices=["cuda"])
    assert sum(label.endswith(" on cuda") for label in seen) == 5
    before = dict(counters["frames"])
    assert before.get("ok", 0) > 0  # the warm-up compiled, rather than finding nothing to do
    # The large input's buffers went back to the device (the models load after this).
    assert torch.cuda.memory_reserved() < torch.cuda.max_memory_reserved() / 2

    # Other shapes and sizes, both colour sources, textures other than the warm-up's 256 px;
    # one a model's 800k faces, whose edges the decimator prices in slices.
    vertices, faces = marching_cubes_mesh(blob_field, 120)
    big_v, big_f = subdivided(*subdivided(vertices, faces))
    assert 1.5 * len(big_f) > torch_qem.MIN_DEVICE_SLICE
    jobs = [
        (RawAsset(big_v.astype(np.float64), big_f.astype(np.int32),
                  vertex_colors=analytic_color(big_v)),
         PipelineOptions(target_faces=20_000, texture_size=2048, device="cuda")),
        (RawAsset(vertices, faces, vertex_colors=analytic_color(vertices)),
         PipelineOptions(target_faces=5_000, texture_size=1024, device="cuda")),
        (RawAsset(vertices, faces, color_field=analytic_color, material_field=_material),
         PipelineOptions(target_faces=1_500, texture_size=512, device="cuda")),
    ]  # fmt: skip
    for raw, options in jobs:
        assert run_pipeline(raw, options).faces > 0
    compiled_in_jobs = {k: v - before.get(k, 0) for k, v in counters["frames"].items()
                        if v != before.get(k, 0)}  # fmt: skip
    assert compiled_in_jobs == {}, f"torch regions compiled inside a job: {compiled_in_jobs}"
