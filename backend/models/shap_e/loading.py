"""Load a Shap-E pipeline from a local folder laid out like the hub repo (no network).

``from_pretrained`` reads the official files (.bin through ``torch.load(weights_only=True)`` or
.safetensors). The mesh decoder's marching-cubes table is a pair of buffers stored in the
renderer checkpoint; a folder whose buffers are empty (a decoder saved before they were filled)
would silently extract no surface, so such tables are replaced by the derived ones and a
warning is returned for the asset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from backend.models.common.torch_dtypes import torch_dtype
from backend.models.shap_e.config import IMAGE_PIPELINE, TEXT_PIPELINE, ShapEConfig
from backend.models.shap_e.marching_tables import shap_e_mc_tables, tables_look_filled

log = logging.getLogger(__name__)


def load_shap_e(
    folder: Path, model_id: str, expected_class: str, device: str, dtype: str
) -> tuple[Any, ShapEConfig, list[str]]:
    """Return ``(pipeline on device, config, load warnings)`` for a Shap-E folder."""
    from diffusers import ShapEImg2ImgPipeline, ShapEPipeline

    config = ShapEConfig.from_folder(folder, model_id)
    if config.pipeline_class != expected_class:
        from shared_protocol.errors import ErrorCode, ProtocolError

        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"{model_id}: {folder} holds a {config.pipeline_class}, expected {expected_class}",
            hint="the text model wants openai/shap-e, the image model openai/shap-e-img2img",
        )
    pipeline_type = {TEXT_PIPELINE: ShapEPipeline, IMAGE_PIPELINE: ShapEImg2ImgPipeline}
    pipeline = pipeline_type[expected_class].from_pretrained(
        str(folder), dtype=torch_dtype(dtype), local_files_only=True
    )
    # The renderer's positional encoding reaches 2^15 x; in float16 that is noise. It is small,
    # so it always runs in float32 whatever the prior's dtype.
    pipeline.shap_e_renderer.to(torch.float32)
    warnings = repair_mc_tables(pipeline.shap_e_renderer)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device), config, warnings


def repair_mc_tables(renderer: Any) -> list[str]:
    """Fill the renderer's marching-cubes buffers if they are empty; return warnings."""
    decoder = renderer.mesh_decoder
    if tables_look_filled(decoder.cases.cpu().numpy(), decoder.masks.cpu().numpy()):
        return []
    cases, masks = shap_e_mc_tables()
    decoder.cases.copy_(torch.from_numpy(cases))
    decoder.masks.copy_(torch.from_numpy(masks))
    message = "the checkpoint's marching-cubes table was empty; used the derived table"
    log.warning(message)
    return [message]
