"""Smoke run of benchmarks/triposr.py on the tiny config (CPU): it runs and writes its report.

Speed is not asserted (that is the benchmark's job on a GPU); this only keeps the script
working as the model code changes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "triposr.py"


def test_tiny_run_writes_a_report(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("triposr_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    assert module.main(["--tiny", "--device", "cpu", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["tiny"] and report["upstream"].startswith("not run")
    assert len(report["rows"]) == 3
    for row in report["rows"]:
        assert set(row["seconds"]) == {"preprocess", "encode", "field", "surface", "colour"}
        assert row["faces"] > 0
        agreement = row["agreement_vs_reference"]
        assert agreement["faces_reference"] == report["rows"][0]["faces"] == agreement["faces"]
    # The product default (fp32, large chunks) gives upstream's settings' output exactly.
    product = report["rows"][1]
    assert "product default" in product["variant"] and product["chunk"] >= 1 << 18
    assert product["dtype"] == "float32"
    assert product["agreement_vs_reference"]["density_identical"] is True
    assert product["agreement_vs_reference"]["surface_max_pct"] == 0.0
    assert report["comparisons"] == [] and report["repeats"] == 1
    assert "variant" in capsys.readouterr().out


def test_pairs_are_warmed_up_and_interleaved_in_alternating_order() -> None:
    """Both sides see the same drifts of the machine: ours, upstream, upstream, ours, ..."""
    spec = importlib.util.spec_from_file_location("triposr_benchmark_pairs", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls: list[str] = []

    def side(name: str, seconds: float):
        def run() -> tuple[dict[str, float], dict]:
            calls.append(name)
            return {"encode": seconds * len(calls)}, {"calls": len(calls)}

        return run

    rows, outputs = module.measure_pair(("ours", "upstream"), (side("a", 1.0), side("b", 2.0)), 4)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert [row["variant"] for row in rows] == ["ours", "upstream"]
    assert all(row["interleaved"] and row["repeats"] == 4 for row in rows)
    # ours ran at calls 3, 6, 7, 10 (1 s x call number); upstream at 4, 5, 8, 9 (2 s x).
    assert rows[0]["seconds"]["encode"] == 6.5 and rows[0]["seconds_min"]["encode"] == 3
    assert rows[1]["seconds"]["encode"] == 13.0 and rows[1]["seconds_max"]["encode"] == 18
    assert outputs == [{"calls": 10}, {"calls": 9}]
