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
