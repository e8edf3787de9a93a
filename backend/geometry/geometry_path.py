"""Which implementation of the heavy geometry stages a job runs: torch or the numba path.

A job on a CUDA device runs welding and cleaning (torch_clean.py), inner-shell visibility
(torch_inner_shells.py), decimation (torch_qem.py) and the bake (closest faces
torch_closest.py, splat transfer_torch.py, atlas raster torch_raster.py, normal encoding
torch_bake.py, dilation torch_dilate.py) in torch on that device; a job on the CPU runs the
compiled numba stages, which are faster there. UV charting and packing stay on the CPU either
way. ``PipelineOptions.geometry_path`` or the
``DREAMCAD_GEOMETRY_PATH`` environment variable ("torch" or "numba") forces one, so the torch
path can be tested on a machine without a GPU (torch on the CPU runs the same code).
"""

from __future__ import annotations

import os

ENV_VAR = "DREAMCAD_GEOMETRY_PATH"
PATHS = ("auto", "torch", "numba")


def chosen(device: str, requested: str = "auto") -> str:
    """"torch" or "numba" for a job on ``device``: the request, else the environment
    variable, else torch exactly when the device is a CUDA one."""
    if requested not in PATHS:
        raise ValueError(f"geometry path {requested!r} is not one of {PATHS}")
    if requested == "auto":
        requested = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        if requested not in PATHS:
            raise ValueError(f"{ENV_VAR}={requested!r} is not one of {PATHS}")
    if requested != "auto":
        return requested
    return "torch" if device.startswith("cuda") else "numba"


def torch_device(device: str, path: str) -> str | None:
    """The torch device the heavy stages run on (None: the numba path)."""
    return device if path == "torch" else None
