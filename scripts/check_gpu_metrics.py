"""Check the GPU memory metrics on a CUDA machine: what the endpoint says against torch and NVML.

Not a test (CI has no GPU): run it by hand where a GPU is,

    .venv/backend/bin/python scripts/check_gpu_metrics.py

It serves the metrics of a throw-away job store on a free loopback port, allocates a known
amount of VRAM with torch on each visible device, scrapes the endpoint over HTTP and prints,
per device, the scraped ``dreamcad_vram_allocated_bytes`` beside ``torch.cuda.memory_allocated``
and the scraped ``dreamcad_gpu_memory_used_bytes`` beside NVML's own reading; exit 1 when a
scraped value is off (torch's exactly, NVML's by more than 64 MiB, as other processes move).
"""

from __future__ import annotations

import sys
import tempfile
import urllib.request
from pathlib import Path

import torch
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's backend, not another installed one

from backend.jobs.store import JobStore  # noqa: E402
from backend.metrics import BackendMetrics  # noqa: E402
from backend.telemetry import gpu_info  # noqa: E402

ALLOCATE_MB = 512
NVML_SLACK_BYTES = 64 * 2**20


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    with tempfile.TemporaryDirectory() as folder:
        store = JobStore(Path(folder) / "jobs.sqlite3", Path(folder) / "jobs")
        metrics = BackendMetrics(store)
        _, port = metrics.start("127.0.0.1:0")
        blocks = [
            torch.empty(ALLOCATE_MB * 2**20, dtype=torch.uint8, device=f"cuda:{i}")
            for i in range(torch.cuda.device_count())
        ]
        torch.cuda.synchronize()
        metrics.refresh()
        samples = scrape(port)
        nvml = {str(gpu.index): gpu for gpu in gpu_info()}
        ok = True
        print(f"{'device':<8} {'scraped alloc MB':>16} {'torch MB':>9} {'scraped used MB':>16} "
              f"{'NVML used MB':>13}")  # fmt: skip
        for i in range(len(blocks)):
            device = f"cuda:{i}"
            scraped = samples.get(("dreamcad_vram_allocated_bytes", (("device", device),)))
            truth = torch.cuda.memory_allocated(i)
            gpu = nvml.get(str(i))
            used = None
            if gpu is not None:
                used = samples.get(
                    ("dreamcad_gpu_memory_used_bytes", (("gpu", str(i)), ("name", gpu.name)))
                )
            nvml_used = None if gpu is None else (gpu.memory_total_mb - gpu.memory_free_mb) * 2**20
            print(f"{device:<8} {_mb(scraped):>16} {_mb(truth):>9} {_mb(used):>16} "
                  f"{_mb(nvml_used):>13}")  # fmt: skip
            ok &= scraped == truth and truth >= ALLOCATE_MB * 2**20
            ok &= used is not None and abs(used - nvml_used) <= NVML_SLACK_BYTES
        metrics.close()
        store.close()
    print("ok" if ok else "MISMATCH")
    return 0 if ok else 1


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


if __name__ == "__main__":
    sys.exit(main())
