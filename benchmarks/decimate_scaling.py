"""Benchmark: how the CPU decimator scales with threads, and where the parallel time goes.

The 800k-triangle benchmark blob -> 20,000 faces with ``qem.collapse`` in one warm process, at
each ``--threads`` count (numba.set_num_threads; the process should be allowed that many cores):
the whole call (median / min / max of ``--repeats``) and each phase's share, timed around the
decimator's own steps (quadrics, the slab sweeps, each greedy slab round, the sequential finish).

With ``--slabs`` it also times every slab of every parallel call alone on one thread (on copies
of the state, so the real run is unchanged): the sum of those is the serial work, their maximum
the best a parallel call can do with one slab per thread. A parallel call far above its largest
slab loses to contention (memory, allocation); one near it is bound by the slabs' imbalance.

    .venv/backend/bin/python benchmarks/decimate_scaling.py --out /tmp/dec --threads 1,2,4,8,16

Writes ``<out>/decimate_scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from backend.geometry import qem  # noqa: E402

TARGET_FACES = 20_000


class PhaseClock:
    """Wraps the decimator's phase functions in timers for one run; ``slabs`` also times each
    slab of every parallel call alone on one thread, before the real call."""

    def __init__(self, slabs: bool) -> None:
        self.slabs = slabs
        self.phases: list[tuple[str, float]] = []
        self.calls: list[dict] = []
        self._saved: dict = {}

    def __enter__(self) -> PhaseClock:
        for name in ("prepare_quadrics", "_sweep_parts", "_decimate", "_parallel_sweeps"):
            self._saved[name] = getattr(qem, name)
        qem.prepare_quadrics = self._timed("quadrics", self._saved["prepare_quadrics"])
        qem._decimate = self._timed("sequential finish", self._saved["_decimate"])
        sweep_parts = self._saved["_sweep_parts"]

        def timed_parts(*args, **kwargs):
            first = not any(phase == "slab sweeps" for phase, _ in self.phases)
            label = "slab sweeps" if first else "greedy slab round"
            started = time.perf_counter()
            sweep_parts(*args, **kwargs)
            self.phases.append((label, time.perf_counter() - started))

        qem._sweep_parts = timed_parts
        qem._parallel_sweeps = self._parallel
        return self

    def __exit__(self, *exc) -> None:
        for name, function in self._saved.items():
            setattr(qem, name, function)

    def _timed(self, label: str, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            result = function(*args, **kwargs)
            self.phases.append((label, time.perf_counter() - started))
            return result

        return timed

    def _parallel(self, face_lists, offsets, *rest):
        kernel = self._saved["_parallel_sweeps"]
        alone: list[float] = []
        if self.slabs:
            alone = self._each_slab_alone(kernel, face_lists, offsets, rest)
        started = time.perf_counter()
        kernel(face_lists, offsets, *rest)
        parallel = time.perf_counter() - started
        sizes = np.diff(offsets)
        self.calls.append({"parallel_s": parallel, "slab_faces": sizes.tolist(), "alone_s": alone})

    @staticmethod
    def _each_slab_alone(kernel, face_lists, offsets, rest) -> list[float]:
        # rest: interior, stop, greedy, pos, faces, quadrics, border, endpoint, flip_cos,
        # min_quality, face_alive, vertex_alive, version, parent, quantile, max_key, scratch
        mutable = {3, 4, 5, 10, 11, 12, 13}  # pos faces quadrics face_alive vertex_alive ...
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        times = []
        try:
            for p in range(len(offsets) - 1):
                only = np.zeros_like(offsets)  # every slab empty but p
                only[p + 1 :] = offsets[p + 1] - offsets[p]
                only[: p + 1] = 0
                state = [arg.copy() if i in mutable else arg for i, arg in enumerate(rest)]
                started = time.perf_counter()
                kernel(face_lists[offsets[p] : offsets[p + 1]].copy(), only, *state)
                times.append(time.perf_counter() - started)
        finally:
            numba.set_num_threads(threads)
        return times


def load_mesh(out: Path, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    path = out / f"blob_{resolution}.npz"
    if not path.exists():
        from benchmarks.blob_mesh import make_input

        raw = make_input(resolution)
        out.mkdir(parents=True, exist_ok=True)
        np.savez(path, vertices=raw.vertices, faces=raw.faces)
    data = np.load(path)
    return data["vertices"], data["faces"]


def run(vertices, faces, slabs: bool) -> dict:
    with PhaseClock(slabs) as clock:
        started = time.perf_counter()
        _, out_faces, _, _ = qem.collapse(vertices, faces, TARGET_FACES)
        total = time.perf_counter() - started
    return {"total_s": total, "faces": len(out_faces), "phases": clock.phases,
            "calls": clock.calls}  # fmt: skip


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=464)
    parser.add_argument("--slabs", action="store_true", help="also time each slab alone")
    parser.add_argument("--parts", type=int, help="slabs per parallel call instead of the rule's")
    args = parser.parse_args()
    if args.parts:  # an experiment: the product's count follows qem.parallel_parts
        qem.parallel_parts = lambda faces: args.parts
    vertices, faces = load_mesh(args.out, args.resolution)
    slabs = qem.parallel_parts(len(faces))
    print(f"{len(faces)} faces -> {TARGET_FACES}; slabs per call: {slabs}")
    results = []
    for threads in [int(t) for t in args.threads.split(",")]:
        numba.set_num_threads(threads)
        run(vertices, faces, False)  # warm-up: kernels loaded, heap grown
        runs = [run(vertices, faces, False) for _ in range(args.repeats)]
        totals = [r["total_s"] for r in runs]
        best = runs[int(np.argsort(totals)[len(totals) // 2])]
        phases: dict[str, float] = {}
        for label, seconds in best["phases"]:
            phases[label] = phases.get(label, 0.0) + seconds
        result = {"threads": threads, "total_s": summary(totals), "faces": best["faces"],
                  "phases_s_median_run": phases,
                  "parallel_calls_s": [c["parallel_s"] for c in best["calls"]]}  # fmt: skip
        if args.slabs:
            detail = run(vertices, faces, True)
            result["slab_calls"] = detail["calls"]
            work = sum(sum(c["alone_s"]) for c in detail["calls"])
            bound = sum(max(c["alone_s"], default=0.0) for c in detail["calls"])
            par = sum(c["parallel_s"] for c in detail["calls"])
            result["slabs_serial_work_s"], result["slabs_largest_sum_s"] = work, bound
            print(f"  slabs: serial work {work:.3f} s, largest-slab bound {bound:.3f} s, "
                  f"parallel calls {par:.3f} s")  # fmt: skip
        results.append(result)
        t = result["total_s"]
        text = ", ".join(f"{k} {v:.3f}" for k, v in phases.items())
        print(f"{threads:>3} threads: {t['median']:.3f} s ({t['min']:.3f}-{t['max']:.3f}); {text}")
    report = {
        "benchmark": "decimate_scaling",
        "conditions": "qem.collapse in one warm process, numba.set_num_threads(N); warm-up run "
        "then median/min/max of the repeats; phases of the median run",
        "machine": {"cpus": os.cpu_count(), "allowed_cpus": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(), "platform": platform.platform()},
        "input": {"resolution": args.resolution, "faces": len(faces)},
        "slabs_per_call": slabs,
        "results": results,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decimate_scaling.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
