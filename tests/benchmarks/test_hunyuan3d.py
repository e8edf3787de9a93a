"""Smoke run of benchmarks/hunyuan3d.py on the tiny config (CPU): warm-up plus repeats, the
median/min/max per stage and the settings it ran under land in its report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import hunyuan3d


def test_tiny_run_reports_repeats_and_settings(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "report.json"
    argv = ["hunyuan3d.py", "--tiny", "--variant", "turbo", "--no-upstream", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    hunyuan3d.main()
    report = json.loads(out.read_text())
    assert report["our_chunks"] == [8192]
    # like-for-like by default: upstream decodes as ours does, with as many points per chunk
    assert report["upstream_decoder"] == report["decoding"] == "hierarchical"
    assert report["upstream_num_chunks"] == 8192 and report["upstream_patch"]
    decoding = report["ours"]["volume_decoding"]
    assert decoding["repeats"] == report["repeats"] >= 1
    assert decoding["min_seconds"] <= decoding["seconds"] <= decoding["max_seconds"]
    assert set(decoding) >= {"peak_vram_mb", "peak_above_start_mb"}


def test_summary_is_median_min_max_of_the_repeats() -> None:
    samples = [
        {stage: {"seconds": s, "peak_vram_mb": m, "peak_above_start_mb": m / 2}
         for stage in ("conditioning", "sampling", "volume_decoding", "marching_cubes")}
        for s, m in ((3.0, 10.0), (1.0, 30.0), (2.0, 20.0))
    ]  # fmt: skip
    summary = hunyuan3d.summarise(samples)
    assert summary["volume_decoding"]["seconds"] == 2.0
    assert (summary["volume_decoding"]["min_seconds"], summary["volume_decoding"]["max_seconds"]) \
        == (1.0, 3.0)  # fmt: skip
    assert summary["volume_decoding"]["peak_vram_mb"] == 30.0
    assert summary["shape_total"]["seconds"] == pytest.approx(8.0)
