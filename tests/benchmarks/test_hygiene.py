"""Benchmark hygiene (issue 18): no benchmark writes into benchmarks/results/ unless --out says
so, and the report marks the committed comparisons that break the rules instead of claiming
their ratios."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


def _code_strings(path: Path) -> list[str]:
    """String constants of a module's code, docstrings left out (they may name the folder)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }  # fmt: skip
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_no_benchmark_defaults_to_a_committed_result():
    offenders = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        if path.name == "report.py":  # it reads the committed results and writes the report
            continue
        # A path built as ROOT / "benchmarks" / "results" / ... or from "benchmarks/results/...".
        joined = any(
            isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
            and isinstance(node.right, ast.Constant) and node.right.value == "results"
            for node in ast.walk(ast.parse(path.read_text()))
        )  # fmt: skip
        if joined or any("benchmarks/results" in s for s in _code_strings(path)):
            offenders.append(path.name)
    assert offenders == []


def test_every_benchmark_script_runs_its_main():
    """A script with a main() calls it under the __main__ guard: report.py lost its guard in a
    split and ran as a no-op, printing nothing and exiting 0."""
    silent = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        tree = ast.parse(path.read_text())
        has_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
        guarded = any(
            isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)
            and "main()" in ast.unparse(n)
            for n in tree.body
        )  # fmt: skip
        if has_main and not guarded:
            silent.append(path.name)
    assert silent == []


def test_default_out_is_a_new_untracked_file(monkeypatch, tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks import outputs

    monkeypatch.setattr(outputs, "RUNS", tmp_path / "runs")
    path = outputs.default_out("geometry_pipeline")
    assert path.parent == tmp_path / "runs" and path.parent.is_dir() and not path.exists()
    assert path.name.startswith("geometry_pipeline-") and path.suffix == ".json"
    assert "/benchmarks/runs/" in (ROOT / ".gitignore").read_text()


def test_report_marks_the_flawed_comparisons_and_brackets_their_ratios():
    sys.path.insert(0, str(ROOT))
    from benchmarks import report

    found = {c.source: c for c in report.comparisons()}
    flawed = ("triposr_h100.json", "text_to_3d_h100.json", "hunyuan3d_mini_turbo_hier_h100.json",
              "hunyuan3d_mini_turbo_flashvdm_h100.json")  # fmt: skip
    for source in flawed:
        assert found[source].status == report.NOT_LIKE_FOR_LIKE, source
        assert found[source].problems
    assert "defaults vs defaults" in found["triposr_h100.json"].title
    assert any("non-finite" in p for p in found["hunyuan3d_mini_turbo_flashvdm_h100.json"].problems)
    page = report.markdown(list(found.values()), [], None)
    assert f"({found['triposr_h100.json'].speedup:.2f}x)" in page  # bracketed: not a claim
    assert f"| {found['triposr_h100.json'].speedup:.2f}x |" not in page
    for rule in report.RULES:
        assert rule in page


def test_report_claims_only_triposr_pairs_at_equal_settings():
    sys.path.insert(0, str(ROOT))
    from benchmarks import report

    pairs = report.triposr_same_settings()
    data = json.loads((ROOT / "benchmarks/results/triposr_h200.json").read_text())
    same = [c for c in data["comparisons"] if c["label"].startswith("same settings")]
    assert len(pairs) == len(same) >= 3 and all(p.like_for_like for p in pairs)
    assert all("defaults" not in p.title for p in pairs)  # the labelled pair is not claimed
    for pair, entry in zip(pairs, same, strict=True):
        assert abs(pair.speedup - entry["upstream_s"]["median"] / entry["ours_s"]["median"]) < 1e-9
    page = "\n".join(report.trellis_speed() + report.trellis2_speed() + report.hunyuan_memory())
    assert "| fast_compiled |" in page and "same-run pair is the parity run" in page
    parity = json.loads((ROOT / "benchmarks/results/trellis_parity_full_h200.json").read_text())
    ratio = (parity["upstream_timing"]["parts"]["network"]["median_s"]
             / parity["timing"]["parts"]["network"]["median_s"])  # fmt: skip
    assert parity["timing"]["compiled_blocks"]  # the product's CUDA mode is what is compared
    assert f"upstream / ours: {ratio:.2f}x (ours compiled)" in "\n".join(report.trellis_parity())
    t2 = json.loads((ROOT / "benchmarks/results/trellis2_parity_full_h200.json").read_text())
    t2_page = "\n".join(report.trellis2_parity())
    for name, row in t2["stages"].items():  # every stage of the run is in the table
        assert f"| {name} |" in t2_page and row["pass"] == all(
            v["max_rel"] <= t2["tolerance_rel"] for v in row.get("compare", {}).values())
    assert "token counts unpublished" in page and "| 4394 |" in page
    cpu = "\n".join(report.cpu_before_after())
    assert "## `postprocess` before / after" in cpu and "## GLB export before / after" in cpu
