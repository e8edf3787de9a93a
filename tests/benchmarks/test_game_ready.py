"""Smoke run of benchmarks/game_ready.py on a small grid: it runs and writes its report.

Speed is not asserted (that is the benchmark's job); this keeps the script working and checks
the figures it reports are the pipeline's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "game_ready.py"


def test_small_run_writes_a_report(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("game_ready_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    args = ["--resolution", "72", "--runs", "1", "--skip-keep-inner", "--texture-size", "256"]
    args += ["--out", str(out)]
    assert module.main(args) == 0
    report = json.loads(out.read_text())
    run = report["runs"][0]
    assert report["input"]["inner_shell_faces"] > 0
    assert 0 < run["hidden_faces_removed"] <= report["input"]["inner_shell_faces"]
    assert [level["name"] for level in run["lods"]] == [f"blob_LOD{i}" for i in range(4)]
    assert "clean.inner_shells" in run["stages_s"] and "lods" in run["stages_s"]
    assert "hidden faces removed" in capsys.readouterr().out
