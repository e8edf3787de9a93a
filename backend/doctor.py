"""``dreamcad-backend doctor``: checks this machine can run the backend, with a fix for each fault.

Each check returns PASS, WARN or FAIL with a line of detail and, when not PASS, a hint. Nothing
here changes the machine.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.models.registry import ModelRegistry, weights_env_var
from backend.telemetry import gpu_info

MIN_FREE_DISK_GB = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "PASS" | "WARN" | "FAIL"
    detail: str
    hint: str = ""


def check_python() -> Check:
    return Check("python", "PASS", f"{sys.version.split()[0]} at {sys.executable}")


def check_torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check(
            "torch",
            "WARN",
            "not installed: only the built-in models can run",
            "Install torch (CUDA build for your driver) with `pip install torch`.",
        )
    if torch.cuda.is_available():
        return Check("torch", "PASS", f"{torch.__version__}, CUDA {torch.version.cuda}")
    return Check(
        "torch",
        "WARN",
        f"{torch.__version__} without CUDA: models run on the CPU",
        "Install a CUDA build of torch matching your driver for GPU speed.",
    )


def check_gpu() -> Check:
    gpus = gpu_info()
    if not gpus:
        return Check(
            "gpu",
            "WARN",
            "no NVIDIA GPU or driver found (NVML)",
            "Install the NVIDIA driver; neural models need a GPU to be fast.",
        )
    text = "; ".join(f"{g.name} {g.memory_free_mb}/{g.memory_total_mb} MB free" for g in gpus)
    return Check("gpu", "PASS", text)


def check_disk(data_dir: Path) -> Check:
    data_dir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(data_dir).free / 2**30
    if free_gb < MIN_FREE_DISK_GB:
        return Check(
            "disk",
            "WARN",
            f"{free_gb:.1f} GB free in {data_dir}",
            f"Keep at least {MIN_FREE_DISK_GB:.0f} GB free for weights and results.",
        )
    return Check("disk", "PASS", f"{free_gb:.1f} GB free in {data_dir}")


def check_weights(registry: ModelRegistry) -> list[Check]:
    checks = []
    for model_id in registry.ids():
        adapter = registry.create(model_id)
        if adapter.weights is None:
            checks.append(Check(f"weights:{model_id}", "PASS", "built in, no weights"))
        elif adapter.weights_present():
            checks.append(Check(f"weights:{model_id}", "PASS", str(adapter.weights_dir)))
        else:
            checks.append(
                Check(
                    f"weights:{model_id}",
                    "WARN",
                    "not downloaded",
                    f"Run `dreamcad-backend download {model_id}` "
                    f"or set {weights_env_var(model_id)}.",
                )
            )
    return checks


def run_checks(data_dir: Path, registry: ModelRegistry) -> list[Check]:
    simple: list[Callable[[], Check]] = [check_python, check_torch, check_gpu]
    return [c() for c in simple] + [check_disk(data_dir)] + check_weights(registry)
