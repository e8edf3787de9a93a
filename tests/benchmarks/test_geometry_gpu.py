"""Smoke run of benchmarks/geometry_gpu.py in its tiny CPU mode: it runs both paths and
writes its table and JSON where --out says. Speed is not asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "geometry_gpu.py"


def test_tiny_cpu_run_writes_a_report(tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("geometry_gpu_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "nested" / "gpu.json"
    assert module.main(["--device", "cpu", "--tiny", "--runs", "5", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    torch_path, numba_path = report["paths"]
    assert torch_path["torch_stages"] is True and numba_path["torch_stages"] is False
    for path in report["paths"]:
        stage = path["stages"]["decimate"]
        assert stage["min_s"] <= stage["median_s"] <= stage["max_s"]
        assert path["quality"]["watertight"] and path["quality"]["pieces"] == 1
        assert path["distinct_assets"] == 1  # every timed run made the same GLB
    assert "mesh stages" in capsys.readouterr().out
