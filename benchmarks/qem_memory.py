"""Peak memory and time of the torch decimator (torch_qem.py) on the benchmark mesh.

Run: ``python benchmarks/qem_memory.py --resolution 200 [--device cuda] [--target 20000]``.
On the CPU the peak is the process's resident-set growth over the call, sampled in a thread
(and the kernel's high-water mark); on CUDA it is ``torch.cuda.max_memory_allocated`` over the
call (run it with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed buffers leave the resident set
at once, as they leave CUDA's count). Both are printed per input face, with the wall and CPU
time and a digest of the output mesh (equal digests: the same decimation).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class RssPeak:
    """Samples the resident set every millisecond while active: its highest value."""

    def __init__(self) -> None:
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resolution", type=int, default=200)
    parser.add_argument("--target", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    from backend.geometry import clean, torch_qem
    from benchmarks.blob_mesh import make_input

    raw = make_input(args.resolution)
    cleaned = clean.clean_mesh(raw.vertices, raw.faces)
    vertices, faces = cleaned.vertices, cleaned.faces
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    start, cpu_start = time.perf_counter(), time.process_time()
    with RssPeak() as rss:
        out = torch_qem.collapse(vertices, faces, args.target, False, args.device)
        if cuda:
            torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = (torch.cuda.max_memory_allocated() if cuda else rss.peak) - base
    print(
        json.dumps(
            {
                "device": args.device,
                "faces_in": len(faces),
                "faces_out": len(out[1]),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "peak_mb": round(peak / 2**20, 1),
                "bytes_per_face": round(peak / len(faces)),
                "digest": digest(*out),
            }
        )
    )


if __name__ == "__main__":
    main()
