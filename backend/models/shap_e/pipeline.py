"""One Shap-E run: prior sampling to a latent, then the latent's surface as a coloured mesh.

:func:`run_shap_e` takes a loaded diffusers Shap-E pipeline (text or image) and its input
(``{"prompt": ...}`` or ``{"image": ...}``, see :func:`image_input`) and goes through the
numbered steps: 1. the diffusers pipeline samples to its latent output with our step reporter
swapped in (stage ``diffusion``); 2. :func:`~backend.models.shap_e.mesh.latent_to_mesh`
extracts the surface at the requested grid (stage ``mesh``); 3. the surface is checked for
the two ways it can be useless (empty, or filling the volume). It knows nothing of adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from backend.cancellation import CancelToken
from backend.models.base import ProgressCallback
from backend.models.common.pipeline_hooks import report_steps
from backend.models.shap_e.mesh import ShapEMesh, is_volume_filling, latent_to_mesh
from shared_protocol.errors import ErrorCode, ProtocolError


@dataclass
class ShapEOutput:
    """The extracted mesh (backend frame, sRGB colours) and what the run noticed about it."""

    mesh: ShapEMesh
    warnings: list[str] = field(default_factory=list)


def image_input(rgba: np.ndarray) -> dict[str, Any]:
    """The image pipeline's input: the cut-out (h, w, 4) uint8 flattened onto white."""
    from PIL import Image

    return {"image": Image.fromarray(composite_on_white(rgba))}


def composite_on_white(pixels: np.ndarray) -> np.ndarray:
    """(h, w, 3|4) uint8 -> (h, w, 3) uint8 over white, the background Shap-E was shown.

    The alpha is the subject mask the shared cut-out made (ModelAdapter.generate); this is
    Shap-E's own framing only: white where the subject is not."""
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE, f"expected an RGB or RGBA image, got shape {pixels.shape}",
            field="images",
        )
    if pixels.shape[2] == 3:
        return pixels
    alpha = pixels[..., 3:4].astype(np.float32) / 255.0
    rgb = pixels[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def run_shap_e(
    pipeline: Any,
    inputs: dict[str, Any],
    *,
    steps: int,
    guidance_scale: float,
    grid_size: int,
    seed: int,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> ShapEOutput:
    """Sample one latent for ``inputs`` and extract its surface at ``grid_size``^3."""
    # 1. prior sampling (noise drawn on the CPU, so a seed means one shape on any device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with report_steps(pipeline, "diffusion", progress, cancel):
        latents = pipeline(
            **inputs,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=generator,
            output_type="latent",
        ).images
    # 2. surface extraction
    mesh = latent_to_mesh(pipeline.shap_e_renderer, latents[0], grid_size, progress, cancel)
    cancel.raise_if_cancelled()
    # 3. surface checks
    warnings: list[str] = []
    if len(mesh.faces) == 0:
        warnings.append("the implicit surface is empty at this seed; try another seed")
    elif is_volume_filling(len(mesh.faces), grid_size):
        # Seen with random weights: the field changes sign everywhere, marching cubes fills the
        # box with millions of faces and clean/decimate/bake take minutes on them.
        warnings.append(
            f"the implicit field changes sign throughout the volume ({len(mesh.faces)} faces "
            f"at grid {grid_size}): not a surface; are the weights trained? The geometry "
            "pipeline is slow on such a mesh"
        )
    return ShapEOutput(mesh, warnings)
