"""benchmarks/product_path.py on the tiny configs (CPU): a real ``serve`` process, real jobs over
ZeroMQ, the report it writes. Speed is not asserted (the GPU run is for that); the figures'
consistency is: the model stays loaded after the warm-up, the split adds up to the wall time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "product_path.py"


def test_tiny_run_times_warm_jobs_through_the_service(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("product_path_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    weights = tmp_path / "weights"
    argv = ["--tiny", "--device", "cpu", "--runs", "2", "--weights-dir", str(weights),
            "--out", str(out)]  # fmt: skip
    assert module.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["tiny"] and report["device"] == "cpu"
    assert list(report["models"]) == ["triposr", "sf3d", "mesh-optimize"]
    # Weights written in the official layouts, under the folder asked for.
    assert (weights / "triposr" / "model.ckpt").is_file()
    assert (weights / "sf3d" / "model.safetensors").is_file()
    for name, entry in report["models"].items():
        assert "error" not in entry, (name, entry)
        assert len(entry["jobs"]) == 2
        for job in [entry["warmup"], *entry["jobs"]]:
            assert job["device"] == "cpu" and job["faces"] > 0 and job["asset_bytes"] > 1000
            assert {"generate", "pipeline.export"} <= set(job["timings_s"])
            assert job["overhead_s"] >= 0.0
            parts = job["model_s"] + job["postprocess_s"] + job["overhead_s"]
            assert abs(parts - job["wall_s"]) < 1e-3
            assert 0.0 < job["glb_s"] <= job["postprocess_s"]
        if name != "mesh-optimize":
            # The warm-up loaded the model; the timed jobs find it loaded.
            assert entry["warmup"]["timings_s"]["load"] > 0.05
            assert all(job["timings_s"]["load"] < 0.05 for job in entry["jobs"])
            assert {"encode", "field", "export"} <= set(entry["jobs"][0]["first_seen_s"])
        summary = entry["summary"]
        walls = sorted(job["wall_s"] for job in entry["jobs"])
        assert summary["wall_s"]["min"] == walls[0] and summary["wall_s"]["max"] == walls[-1]
        assert summary["distinct_assets"] == 1, name  # same request and seed: the same GLB
    assert "wall" in capsys.readouterr().out
    # A second run reuses the kept weights instead of writing them again.
    assert module.main([*argv[:-2], "--models", "triposr", "--out", str(tmp_path / "b.json")]) == 0
    again = json.loads((tmp_path / "b.json").read_text())
    assert again["weights"]["triposr"]["write_s"] == 0.0
