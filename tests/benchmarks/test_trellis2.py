"""Smoke run of benchmarks/trellis2.py on the tiny config (CPU): both pipeline types timed per
stage, the table printed and the JSON written. Speed is the GPU run's business."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "trellis2.py"


def test_tiny_run_times_every_stage_of_both_pipelines(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("trellis2_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    assert module.main(["--tiny", "--device", "cpu", "--runs", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    low, cascade = report["types"]["512"], report["types"]["1024_cascade"]
    assert set(low["stages_s"]) == {"condition", "structure", "shape", "texture", "decode",
                                    "mesh", "total"}  # fmt: skip
    assert "shape_hr" in cascade["stages_s"] and cascade["resolution"] == 2 * low["resolution"]
    assert all(s["min"] <= s["median"] <= s["max"] for s in low["stages_s"].values())
    assert low["structure_voxels"] > 0 and low["faces"] > 0 and report["weights_gb"] > 0
    assert "shape_hr" in capsys.readouterr().out
