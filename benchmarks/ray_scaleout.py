"""Ray scale-out: throughput with 1, 2 and 4 worker nodes, and the Ray path's overhead for one job.

Each configuration is a real local Ray cluster (a head and N worker nodes, processes, each with
one unit of the custom resource ``dreamcad_gpu`` standing in for a GPU), a real ``serve --ray``
front door and a real ZeroMQ client submitting jobs on the built-in models (``procedural`` text
jobs and ``inflate`` image jobs, alternating). Throughput is jobs per minute from the first
submit to the last result, after one warm-up job per worker (models loaded, kernels loaded).
The overhead is one job's submit-to-result time through Ray (one node) against a local backend
(``serve`` without ``--ray``), both warm, median of ``--repeats``.

Everything runs inside a private network namespace (only ``lo``), like the tests: the script
re-executes itself under ``unshare -n`` (or ``-rn``). On a 2-core machine the nodes share two
cores, so throughput stops growing once the busy workers outnumber the cores; the table says
how far it got. Multi-GPU figures belong to the multi-GPU issue.

    .venv/backend/bin/python benchmarks/ray_scaleout.py [--nodes 1 2 4] [--jobs 8] [--repeats 3]
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
from shared_protocol.messages import (  # noqa: E402
    ImageInput,
    JobFailedEvent,
    PingRequest,
    ResultEvent,
    SubmitRequest,
)
from tests.support import private_network  # noqa: E402
from tests.support.backend_process import BackendProcess  # noqa: E402

RESOURCE = "dreamcad_gpu"
NODE_MEMORY = 80 * 2**20
EXAMPLE = REPO / "backend" / "assets" / "example.png"


def request(index: int) -> SubmitRequest:
    """Alternating built-in jobs: a procedural text job, an inflate image job."""
    common = {"target_faces": 2000, "texture_size": 256}
    if index % 2 == 0:
        return SubmitRequest(model="procedural", task="text", prompt="a red torus",
                             parameters={"resolution": 48, "steps": 6}, **common)
    return SubmitRequest(model="inflate", task="image",
                         images=(ImageInput(data=EXAMPLE.read_bytes()),),
                         parameters={"resolution": 48}, **common)


def run_jobs(address: str, indexes: list[int]) -> float:
    """Submit all, wait for every outcome; seconds from first submit to last result."""
    with BackendClient(address) as client:
        started = time.perf_counter()
        pending = set()
        for index in indexes:
            pending.add(client.request(request(index), timeout_s=30).job_id)
        while pending:
            envelope = client.receive(timeout_s=600)
            if envelope is None:
                raise TimeoutError(f"jobs {pending} did not end")
            message = envelope.message
            if isinstance(message, (ResultEvent, JobFailedEvent)) and message.job_id in pending:
                if isinstance(message, JobFailedEvent):
                    raise RuntimeError(f"job failed: {message.error}")
                pending.discard(message.job_id)
        return time.perf_counter() - started


def wait_for_workers(address: str, count: int) -> None:
    deadline = time.monotonic() + 180
    with BackendClient(address) as client:
        while time.monotonic() < deadline:
            if sum(w.alive for w in client.request(PingRequest(), timeout_s=10).workers) >= count:
                return
            time.sleep(0.5)
    raise TimeoutError(f"{count} Ray workers did not start")


def one_job_s(address: str, repeats: int) -> float:
    return statistics.median(run_jobs(address, [0]) for _ in range(repeats))


def measure_cluster(nodes: int, jobs: int, repeats: int, workdir: Path) -> dict:
    from ray.cluster_utils import Cluster

    os.environ["PYTHONPATH"] = str(REPO)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE_MEMORY, "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=1, resources={RESOURCE: 1}, object_store_memory=NODE_MEMORY)
    backend = BackendProcess(workdir / f"ray{nodes}", "--ray", cluster.address,
                             "--ray-resource", RESOURCE).start(wait_s=180)
    try:
        wait_for_workers(backend.address, nodes)
        run_jobs(backend.address, list(range(2 * nodes)))  # warm: both models on every worker
        seconds = run_jobs(backend.address, list(range(jobs)))
        row = {"nodes": nodes, "jobs": jobs, "seconds": round(seconds, 2),
               "jobs_per_min": round(60 * jobs / seconds, 2)}
        if nodes == 1:
            row["one_job_s"] = round(one_job_s(backend.address, repeats), 3)
        return row
    finally:
        backend.stop()
        cluster.shutdown()


def measure_local(repeats: int, workdir: Path) -> float:
    with BackendProcess(workdir / "local") as backend:
        run_jobs(backend.address, [0, 1])  # warm
        return one_job_s(backend.address, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default: a new one in benchmarks/runs/)")
    args = parser.parse_args()
    if not private_network.inside():
        if private_network.unshare_command() is None:
            print("unshare -n / -rn is not permitted here: not running Ray off loopback")
            return 2
        unshare = private_network.unshare_command()
        script = 'ip link set lo up && exec "$0" "$@"'
        os.execvpe(unshare[0], [*unshare, "sh", "-c", script, sys.executable, *sys.argv],
                   {**os.environ, private_network.MARKER: "1"})
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = [measure_cluster(n, args.jobs, args.repeats, workdir) for n in args.nodes]
        local_s = measure_local(args.repeats, workdir)
    base = rows[0]["jobs_per_min"]
    print(f"{'worker nodes':>12} {'jobs':>5} {'seconds':>8} {'jobs/min':>9} {'speed-up':>9}")
    for row in rows:
        row["speedup"] = round(row["jobs_per_min"] / base, 2)
        print(f"{row['nodes']:>12} {row['jobs']:>5} {row['seconds']:>8} "
              f"{row['jobs_per_min']:>9} {row['speedup']:>8}x")
    ray_one = next((r["one_job_s"] for r in rows if "one_job_s" in r), None)
    print(f"one procedural job, warm: local {local_s:.3f} s, Ray (1 node) {ray_one} s")
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "throughput": rows,
        "one_job_s": {"local": round(local_s, 3), "ray": ray_one},
        "overhead_s": round(ray_one - local_s, 3) if ray_one is not None else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out = args.out or default_out("ray_scaleout")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
