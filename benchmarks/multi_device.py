"""One backend over several devices: throughput of a mixed job stream on 1 worker against N.

In-process, with the backend's real parts: a SQLite job queue, a ``WorkerSupervisor`` with a
worker thread per device, each with its own model cache and VRAM budget, placing jobs by
jobs/device_placer.py (and, for comparison, in plain queue order: ``queue order`` rows). The
stream cycles through ``--models``, ``--jobs`` jobs submitted at once; the time runs from the
submit to the last job's end and includes the model loads (placement decides how many there
are). The table gives jobs/min, the speed-up over one worker, loads and affinity hits.

Here (no GPU): ``--devices cpu,cpu`` with CPU stand-ins, the procedural model under ids that
declare a size and a load time (models/builtin/sized.py); on two cores the CPU-bound jobs
cannot run faster than two at a time, so the figures show placement (loads, hits), not a GPU
speed-up. On a multi-GPU host, real models on image jobs:

    .venv/backend/bin/python benchmarks/multi_device.py --devices cuda:0,cuda:1,cuda:2,cuda:3 \\
        --models triposr,sf3d,hunyuan3d-2mini,trellis --jobs 32 --budget-mb 60000 --out FILE
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from backend.jobs.queue import JobQueue  # noqa: E402
from backend.jobs.spec import JobSpec, StoredImage  # noqa: E402
from backend.jobs.store import JobStore  # noqa: E402
from backend.jobs.supervisor import WorkerSupervisor  # noqa: E402
from backend.models.builtin.sized import sized_model  # noqa: E402
from backend.models.registry import CacheEvent, ModelRegistry  # noqa: E402
from benchmarks.outputs import default_out  # noqa: E402

EXAMPLE = REPO / "backend" / "assets" / "example.png"
STAND_INS = {"stand-a": 400, "stand-b": 400, "stand-c": 700}  # MB declared
STAND_IN_LOAD_S = 1.0


def registry_for(models: list[str], cpu: bool) -> ModelRegistry:
    if cpu:
        return ModelRegistry(adapters={
            m: sized_model(m, STAND_INS.get(m, 400), STAND_IN_LOAD_S) for m in models
        })  # fmt: skip
    return ModelRegistry()


def spec_for(registry: ModelRegistry, model: str, index: int) -> tuple[JobSpec, tuple[bytes, ...]]:
    if "image" in registry.adapter_class(model).tasks:
        spec = JobSpec(model=model, task="image", seed=index, target_faces=20000,
                       texture_size=1024, images=(StoredImage("0.png"),))  # fmt: skip
        return spec, (EXAMPLE.read_bytes(),)
    spec = JobSpec(model=model, task="text", prompt=f"a torus {index}", seed=index,
                   parameters={"resolution": 64, "steps": 8}, target_faces=2000,
                   texture_size=256)  # fmt: skip
    return spec, ()


def run(devices: list[str], models: list[str], jobs: int, budget: int | None,
        placement: bool, cpu: bool) -> dict:  # fmt: skip
    registry = registry_for(models, cpu)
    loads: Counter[str] = Counter()
    registry.cache_listeners.append(
        lambda e: loads.update([f"{threading.current_thread().name}/{e.model_id}"])
        if isinstance(e, CacheEvent) and e.kind == "load" else None
    )
    with tempfile.TemporaryDirectory() as folder:
        store = JobStore(Path(folder) / "jobs.sqlite3", Path(folder) / "jobs")
        queue = JobQueue(store, lambda job_id, message: None, max_queued=100_000)
        stop = threading.Event()
        supervisor = WorkerSupervisor(queue, registry, devices, stop, budget, placement)
        supervisor.start()
        started = time.perf_counter()
        ids = [queue.submit(*spec_for(registry, models[i % len(models)], i))[0].job_id
               for i in range(jobs)]  # fmt: skip
        while True:
            supervisor.check()
            states = Counter(store.get(j).state for j in ids)
            if states["queued"] + states["running"] == 0:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        stats = supervisor.placer.stats()
        stop.set()
        queue.wake_all()
        supervisor.join(30)
        store.close()
    return {
        "devices": devices,
        "placement": "affinity" if placement else "queue order",
        "jobs": jobs,
        "succeeded": states["succeeded"],
        "seconds": round(seconds, 2),
        "jobs_per_min": round(60 * jobs / seconds, 2),
        "loads": sum(loads.values()),
        "loads_by_worker_model": dict(loads),
        "affinity_hits": sum(s.affinity_hits for s in stats.values()) if placement else None,
        "jobs_by_worker": {k: s.jobs for k, s in stats.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="cpu,cpu", help="comma-separated, N workers")
    parser.add_argument("--models", default=",".join(STAND_INS))
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--budget-mb", type=int, default=800, help="per device; 0: none")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    devices = args.devices.split(",")
    models = args.models.split(",")
    cpu = all(d == "cpu" for d in devices)
    budget = args.budget_mb or None
    rows = [run(devices[:1], models, args.jobs, budget, True, cpu)]
    if len(devices) > 1:
        rows.append(run(devices, models, args.jobs, budget, False, cpu))
        rows.append(run(devices, models, args.jobs, budget, True, cpu))
    base = rows[0]["jobs_per_min"]
    print(f"{'workers':>7} {'placement':>12} {'jobs/min':>9} {'speed-up':>8} {'loads':>6} hits")
    for row in rows:
        row["speedup_vs_1"] = round(row["jobs_per_min"] / base, 2)
        print(f"{len(row['devices']):>7} {row['placement']:>12} {row['jobs_per_min']:>9} "
              f"{row['speedup_vs_1']:>8} {row['loads']:>6} {row['affinity_hits']}")  # fmt: skip
    result = {
        "benchmark": "multi_device",
        "host": platform.node(),
        "machine": platform.processor() or platform.machine(),
        "stand_ins": cpu,
        "stand_in_load_s": STAND_IN_LOAD_S if cpu else None,
        "models": models,
        "budget_mb": budget,
        "rows": rows,
    }
    args.out = args.out or default_out("multi_device")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
