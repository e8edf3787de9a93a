"""Weights folders for the product-path benchmark: seeded random weights in the official layouts.

Full size (the real architectures, for GPU timing) or tiny (the test configs, for a CPU smoke
run). Random weights put no object at the official density levels (TripoSR's request threshold
25, SF3D's config threshold 10), so a full-size folder comes with a level measured on the
benchmark's own input, as a job frames it: TripoSR's is a request parameter (returned here),
SF3D's is written into its ``config.yaml`` (where the official file has it). The levels are the
ones benchmarks/triposr.py and benchmarks/sf3d.py use (the grid's 99th / 70th percentile).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.models.common.background import remove_background

TRIPOSR_QUANTILE = 0.99  # about a real object's face count at 256^3 (benchmarks/triposr.py)
SF3D_QUANTILE = 0.7  # 30 % of the tet grid occupied (benchmarks/sf3d.py)
SF3D_FULL_CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "sf3d"
SF3D_FULL_CONFIG = SF3D_FULL_CONFIG / "config_full.yaml"
CALIBRATION = "product_path_calibration.json"  # beside the weights, so a kept folder is reused


def prepare(
    model_id: str, folder: Path, tiny: bool, device: torch.device, rgba: np.ndarray
) -> dict[str, Any]:
    """Write (or reuse) ``folder/<model_id>``; return {"path", "parameters", "level", "write_s"}.

    ``parameters`` are the request parameters the benchmark's jobs send to this model; ``level``
    the measured surface level (None for the tiny configs, whose own levels cross the field).
    """
    weights = folder / model_id
    record = weights / CALIBRATION
    if record.is_file():
        return {**json.loads(record.read_text()), "path": str(weights), "write_s": 0.0}
    started = time.perf_counter()
    level = None
    if tiny:
        parameters = _tiny(model_id, folder)
    elif model_id == "triposr":
        level = _triposr_full(weights, device, rgba)
        parameters = {"density_threshold": level}
    elif model_id == "sf3d":
        level, parameters = _sf3d_full(weights, device, rgba), {}
    else:
        raise ValueError(f"no random weights for {model_id!r}")
    write_s = time.perf_counter() - started
    found = {"parameters": parameters, "level": level}
    record.write_text(json.dumps(found))
    return {**found, "path": str(weights), "write_s": round(write_s, 2)}


def _tiny(model_id: str, folder: Path) -> dict[str, Any]:
    if model_id == "triposr":
        from backend.models.triposr import testing
    else:
        from backend.models.sf3d import testing  # type: ignore[no-redef]
    testing.write_tiny_weights(folder, model_id)
    return dict(testing.TINY_PARAMETERS[model_id])


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


@torch.no_grad()
def _triposr_full(weights: Path, device: torch.device, rgba: np.ndarray) -> float:
    from backend.models.triposr import pipeline
    from backend.models.triposr.config import TripoSRConfig
    from backend.models.triposr.loading import load_model, write_model_folder
    from backend.models.triposr.testing import random_state

    config = TripoSRConfig()
    write_model_folder(weights, config, random_state(config, seed=0))
    model = load_model(weights, device)
    settings = pipeline.TripoSRSettings()
    image = pipeline.condition_image(remove_background(rgba).rgba, settings.foreground_ratio)
    planes = pipeline.encode(model, image, torch.float32)  # the service loads it in float32
    density = pipeline.density_grid(model, planes, settings.mc_resolution, 1 << 16)
    level = float(np.quantile(density.cpu().numpy(), TRIPOSR_QUANTILE))
    del model, planes, density
    _release(device)
    return level


@torch.no_grad()
def _sf3d_full(weights: Path, device: torch.device, rgba: np.ndarray) -> float:
    from omegaconf import OmegaConf

    from backend.models.sf3d.adapter import SF3DAdapter
    from backend.models.sf3d.config import config_from_dict
    from backend.models.sf3d.isosurface import MarchingTetrahedra, TetGrid
    from backend.models.sf3d.loading import reset_buffers, save_checkpoint
    from backend.models.sf3d.network import SF3DNetwork, default_camera
    from backend.models.sf3d.pipeline import decode_chunked
    from backend.models.sf3d.preprocess import condition_image
    from backend.models.sf3d.testing import randomize_weights

    raw = OmegaConf.to_container(OmegaConf.load(SF3D_FULL_CONFIG))
    config = config_from_dict(raw)  # type: ignore[arg-type]
    with torch.device("meta"):
        model = SF3DNetwork(config)
    model = model.to_empty(device="cpu")
    randomize_weights(model, seed=0)
    reset_buffers(model)
    model = model.to(device).eval()
    cond = condition_image(remove_background(rgba).rgba, config, 0.85)
    c2w, intrinsic = default_camera(config)
    dtype = SF3DAdapter.cuda_dtype if device.type == "cuda" else "float32"
    with torch.autocast(device.type, dtype=getattr(torch, dtype), enabled=dtype != "float32"):
        planes, _ = model.scene_codes(
            cond.rgb.to(device), c2w.to(device).view(1, 1, 4, 4),
            intrinsic.to(device).view(1, 1, 3, 3),
        )  # fmt: skip
    resolution = config.isosurface_resolution
    extractor = MarchingTetrahedra(TetGrid.regular(resolution // 2), resolution, device)
    points = extractor.vertices * 2 * config.radius - config.radius
    density = decode_chunked(model, points, planes[0].float(), ("density",), 1 << 18)["density"]
    level = float(np.quantile(density.float().cpu().numpy(), SF3D_QUANTILE))
    raw["isosurface_threshold"] = level  # type: ignore[index]
    model = model.cpu()
    save_checkpoint(model, weights, OmegaConf.to_yaml(OmegaConf.create(raw)))
    del model, planes, density, extractor
    _release(device)
    return level
