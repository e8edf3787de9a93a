"""GPU telemetry through NVML (nvidia-ml-py), and the devices the workers run on.

Everything degrades cleanly: no NVIDIA driver, no GPU, or no CUDA-enabled torch gives an empty
GPU list and one CPU worker, never an exception.
"""

from __future__ import annotations

import logging
import threading

from shared_protocol.messages import GpuInfo

log = logging.getLogger(__name__)
_nvml_lock = threading.Lock()
_nvml_state: dict[str, bool] = {}


def _nvml():
    with _nvml_lock:
        try:
            import pynvml
        except ImportError:
            return None
        if "ok" not in _nvml_state:
            try:
                pynvml.nvmlInit()
                _nvml_state["ok"] = True
            except pynvml.NVMLError as error:
                log.info("no NVIDIA GPU telemetry: %s", error)
                _nvml_state["ok"] = False
        return pynvml if _nvml_state["ok"] else None


def gpu_info() -> tuple[GpuInfo, ...]:
    """Name, memory, utilisation, temperature and power of each NVIDIA GPU (empty if none)."""
    nvml = _nvml()
    if nvml is None:
        return ()
    gpus = []
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else name,
                    memory_total_mb=int(memory.total // 2**20),
                    memory_free_mb=int(memory.free // 2**20),
                    utilization_percent=_optional(
                        lambda: int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)  # noqa: B023
                    ),
                    temperature_c=_optional(
                        lambda: int(nvml.nvmlDeviceGetTemperature(handle, 0))  # noqa: B023
                    ),
                    power_w=_optional(
                        lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # noqa: B023
                    ),
                )
            )
    except nvml.NVMLError as error:
        log.warning("GPU telemetry failed: %s", error)
    return tuple(gpus)


def _optional(read):
    try:
        return read()
    except Exception:
        return None


def detect_devices() -> tuple[str, ...]:
    """``cuda:i`` for each GPU that torch can use, else ``("cpu",)``."""
    if not gpu_info():
        return ("cpu",)
    try:
        import torch
    except ImportError:
        return ("cpu",)
    if not torch.cuda.is_available():
        return ("cpu",)
    return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count()))
