"""Loopback round trips through a real backend process: ping p50/p99 and a 20 MB result fetch.

Targets (issue 2): ping p50 < 1 ms; 20 MB result < 50 ms. The backend runs as its own process
(``dreamcad-backend serve``) and the client is shared_protocol's BackendClient, exactly as the
add-on uses it; the 20 MB result is a finished job seeded into the backend's job store.

    .venv/backend/bin/python benchmarks/protocol_roundtrip.py [--pings 2000] [--fetches 30]
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
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.jobs.store import JobRecord, JobStore  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402
from shared_protocol.client import BackendClient  # noqa: E402
from shared_protocol.messages import FetchReply, FetchRequest, Manifest, PingRequest  # noqa: E402
from tests.support.backend_process import BackendProcess  # noqa: E402

RESULT_BYTES = 20 * 2**20


def seed_result(data_dir: Path) -> str:
    """A succeeded job whose result file is 20 MB of incompressible bytes."""
    store = JobStore(data_dir / "jobs.sqlite3", data_dir / "jobs")
    record = JobRecord(
        job_id="bench20mb",
        seq=0,
        state="succeeded",
        priority=0,
        model="procedural",
        task="text",
        prompt="bench",
        name="",
        seed=0,
        request={},
        created_at=time.time(),
    )
    store.insert(record)
    manifest = Manifest(
        format="glb",
        faces=0,
        vertices=0,
        bbox_min=(0, 0, 0),
        bbox_max=(1, 1, 1),
        seed=0,
        model="procedural",
    )
    store.update(record.job_id, finished_at=time.time(), manifest=asdict(manifest))
    job_dir = store.job_dir(record.job_id)
    job_dir.mkdir(parents=True)
    (job_dir / "result.glb").write_bytes(os.urandom(RESULT_BYTES))
    store.close()
    return record.job_id


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(client: BackendClient, message, count: int, timeout_s: float) -> list[float]:
    client.request(message, timeout_s)  # warm-up: connection, caches
    times = []
    for _ in range(count):
        started = time.perf_counter()
        reply = client.request(message, timeout_s)
        times.append((time.perf_counter() - started) * 1000)
    if isinstance(reply, FetchReply):
        assert len(reply.asset) == RESULT_BYTES
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--fetches", type=int, default=30)
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON file (default: a new one in benchmarks/runs/)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        job_id = seed_result(data_dir)
        with BackendProcess(data_dir) as backend, BackendClient(backend.address) as client:
            ping = measure(client, PingRequest(), args.pings, 5)
            fetch = measure(client, FetchRequest(job_id=job_id), args.fetches, 30)
    rows = [
        ("ping", len(ping), statistics.median(ping), percentile(ping, 99), 1.0),
        ("fetch 20 MB", len(fetch), statistics.median(fetch), percentile(fetch, 99), 50.0),
    ]
    print(f"{'round trip':<14}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'target':>10}  met")
    for name, n, p50, p99, target in rows:
        print(
            f"{name:<14}{n:>6}{p50:>10.3f}{p99:>10.3f}{'< ' + str(target):>10}  "
            f"{'yes' if p50 < target else 'NO'}"
        )
    report = {
        "benchmark": "protocol_roundtrip",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "results": [
            dict(zip(("name", "n", "p50_ms", "p99_ms", "target_p50_ms"), row, strict=True))
            for row in rows
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.out or default_out("protocol_roundtrip")
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
