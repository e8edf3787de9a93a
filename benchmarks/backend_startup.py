"""A cold backend's start: seconds from process start to "serving", and to the first hello reply.

The hello reply carries the model catalogue; building it must not import torch or any model
code (issue 12). Each repeat starts a fresh ``dreamcad-backend serve`` process (no warm-up) and
measures, from ``Popen``: the "serving on" log line, then one ``hello_request`` round trip, and
how long that hello itself took.

    .venv/backend/bin/python benchmarks/backend_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.outputs import default_out  # noqa: E402
from shared_protocol.client import BackendClient  # noqa: E402
from shared_protocol.messages import HelloReply, HelloRequest  # noqa: E402
from tests.support.backend_process import BackendProcess  # noqa: E402


def one_start(root: Path) -> dict[str, float]:
    backend = BackendProcess(root)
    started = time.perf_counter()
    backend.start(wait_s=180)
    serving = time.perf_counter() - started
    try:
        with BackendClient(backend.address) as client:
            before = time.perf_counter()
            reply = client.request(HelloRequest(client_name="bench"), timeout_s=180)
            hello = time.perf_counter() - before
        assert isinstance(reply, HelloReply), reply
        return {
            "serving_s": serving,
            "first_hello_s": hello,
            "first_hello_after_start_s": time.perf_counter() - started,
            "models": len(reply.models),
        }
    finally:
        backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: a new one in benchmarks/runs/)"
    )
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_start(Path(tmp)))
        print(f"run {i + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in runs[-1].items()))
    summary = {}
    print(f"\n{'measure':<28}{'median':>9}{'min':>9}{'max':>9}")
    for key in ("serving_s", "first_hello_s", "first_hello_after_start_s"):
        values = [r[key] for r in runs]
        summary[key] = {
            "median": statistics.median(values), "min": min(values), "max": max(values)
        }
        print(f"{key:<28}" + "".join(f"{summary[key][s]:>9.3f}" for s in ("median", "min", "max")))
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "runs": runs,
        "summary": summary,
        "models": runs[0]["models"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.out or default_out("backend_startup")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
