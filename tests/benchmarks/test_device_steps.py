"""Smoke run of benchmarks/device_steps.py on the CPU: each pair gives the same answer."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from benchmarks import device_steps


def test_small_run_writes_the_table_and_the_json(tmp_path, capsys) -> None:
    out = tmp_path / "steps.json"
    argv = ["--device", "cpu", "--small", "--repeats", "5", "--out", str(out)]
    assert device_steps.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["read_back"]["same"] and report["read_back"]["ours_ms"]["n"] == 5
    assert [row["same"] for row in report["gathers"]] == [True] * 4
    assert report["dilation"] is None  # CUDA and Triton only
    assert "| gather 8000 rows (3, 2) float64 |" in capsys.readouterr().out
