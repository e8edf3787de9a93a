"""``dreamcad-backend stats``: the real command over a job store the real worker filled."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from backend.cli.stats import parse_duration
from tests.support.backend_process import REPO
from tests.support.job_runs import (
    MODEL_BUG,
    open_queue,
    registry_with_failing_model,
    run_jobs,
    spec,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    queue = open_queue(data_dir)
    old, *_ = run_jobs(
        queue,
        registry_with_failing_model(),
        [spec(), spec(prompt="a blue cube"), spec("failing", MODEL_BUG)],
    )
    # One job ended ten days ago: --since 7d leaves it out.
    queue.store.update(old, finished_at=time.time() - 10 * 86400)
    queue.store.close()
    return data_dir


def stats(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "stats", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def test_json_per_model(data_dir) -> None:
    report = json.loads(stats("--data-dir", str(data_dir), "--json").stdout)
    models = {entry["model"]: entry for entry in report["models"]}
    assert report["since"] is None
    assert models["procedural"]["jobs"] == 2 and models["procedural"]["success_rate"] == 1.0
    assert models["procedural"]["stages"]["generate"]["count"] == 2
    assert models["procedural"]["gpu_seconds"] > 0
    assert models["failing"]["failures"] == {"model_failed": 1}
    assert models["failing"]["success_rate"] == 0.0


def test_since_leaves_older_jobs_out(data_dir) -> None:
    report = json.loads(stats("--data-dir", str(data_dir), "--json", "--since", "7d").stdout)
    models = {entry["model"]: entry for entry in report["models"]}
    assert models["procedural"]["jobs"] == 1
    assert report["until"] - report["since"] == pytest.approx(7 * 86400)


def test_table_on_a_terminal(data_dir) -> None:
    out = stats("--data-dir", str(data_dir)).stdout
    assert out.splitlines()[0] == "3 job(s) ended in the job store"
    assert any(line.split()[:3] == ["procedural", "2", "2"] for line in out.splitlines())
    assert "failing: failures by code: model_failed 1" in out
    assert "generate" in out and "p95" in out


def test_an_empty_data_dir_has_no_jobs(tmp_path) -> None:
    assert stats("--data-dir", str(tmp_path)).stdout.strip() == "0 job(s) ended in the job store"
    assert not (tmp_path / "jobs.sqlite3").exists()  # stats never makes a store


def test_parse_duration() -> None:
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("90") == 90
    assert parse_duration("1.5h") == 5400
    with pytest.raises(Exception, match="not an age"):
        parse_duration("seven days")
