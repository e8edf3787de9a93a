"""Smoke run of benchmarks/trellis.py on the tiny config (CPU): every stage is timed and the
report written. Speed is not asserted (that is the benchmark's job on a GPU)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "trellis.py"
STAGES = {"cut_out", "condition", "structure", "latent", "decode", "decode.mesh_decoder",
          "decode.gaussian_decoder", "mesh", "hand_over", "total"}  # fmt: skip


def test_tiny_run_times_every_stage(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("trellis_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    assert module.main(["--tiny", "--device", "cpu", "--runs", "0", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["tiny"] and set(report["stages_s"]) == STAGES
    assert all(seconds >= 0 for seconds in report["stages_s"].values())
    assert report["occupied_voxels"] > 0 and report["faces"] > 0
    assert report["gaussians_ply_mb"] > 0
