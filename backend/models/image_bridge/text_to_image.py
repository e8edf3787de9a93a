"""Find and run any diffusers text-to-image pipeline from a local folder (no network).

The pipeline is named by a hub repo id (looked up in the Hugging Face cache only) or by a local
folder in the diffusers layout. ``AutoPipelineForText2Image`` picks the class from
``model_index.json``, so SDXL-Turbo, SD 1.x/2.x, FLUX.1-schnell and the rest load the same way;
fp16-only repos (``*.fp16.safetensors``) load with ``variant="fp16"``. Importing this module
imports neither torch nor diffusers (the adapter's checks use :func:`locate_pipeline`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback
from backend.models.common.device_errors import typed_device_errors
from backend.models.common.pipeline_hooks import report_steps
from shared_protocol.errors import ErrorCode, ProtocolError


def locate_pipeline(name: str, default_repo: str, default_dir: Path | None) -> Path:
    """Folder of pipeline ``name``: a local folder, the adapter's own weights, or the HF cache."""
    as_path = Path(name).expanduser()
    if as_path.is_absolute() or name.startswith("."):
        if (as_path / "model_index.json").is_file():
            return as_path
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{as_path} is not a diffusers pipeline folder (no model_index.json)",
            field="parameters.text_model",
        )
    own = default_dir is not None and (default_dir / "model_index.json").is_file()
    if name == default_repo and own and default_dir is not None:
        return default_dir
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as error:  # not in the cache (or not a repo id): say how to get it
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"text-to-image pipeline {name!r} is not downloaded ({type(error).__name__})",
            field="parameters.text_model",
            hint=f"run `huggingface-cli download {name}` on the backend machine, or give a "
            "local folder",
        ) from error


def _variant(folder: Path) -> str | None:
    has_fp16 = any(folder.glob("*/*.fp16.safetensors"))
    has_plain = any(p for p in folder.glob("*/*.safetensors") if ".fp16." not in p.name) or any(
        folder.glob("*/*.bin")
    )
    return "fp16" if has_fp16 and not has_plain else None


def load_text_to_image(folder: Path, device: str, dtype: str) -> Any:
    """A diffusers text-to-image pipeline from ``folder`` on ``device`` in ``dtype`` (a name)."""
    from diffusers import AutoPipelineForText2Image

    from backend.models.common.torch_dtypes import torch_dtype

    with typed_device_errors("text-to-image"):
        pipeline = AutoPipelineForText2Image.from_pretrained(
            str(folder), dtype=torch_dtype(dtype), variant=_variant(folder),
            local_files_only=True,
        )
        pipeline.set_progress_bar_config(disable=True)
        return pipeline.to(device)


def run_text_to_image(
    pipeline: Any,
    prompt: str,
    *,
    steps: int,
    guidance_scale: float,
    size: int,
    seed: int,
    progress: ProgressCallback,
    cancel: CancelToken,
    stage: str,
) -> np.ndarray:
    """Return (size, size, 4) uint8 RGBA (opaque) for ``prompt``."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    with typed_device_errors("text-to-image"), report_steps(pipeline, stage, progress, cancel):
        images = pipeline(
            prompt=prompt, num_inference_steps=steps, guidance_scale=guidance_scale,
            height=size, width=size, generator=generator, output_type="np",
        ).images
    rgb = np.clip(np.rint(np.asarray(images[0]) * 255.0), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)
