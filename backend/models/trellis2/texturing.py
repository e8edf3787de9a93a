"""TRELLIS.2's texturing of an existing mesh: mesh + image -> PBR voxels on that mesh.

Upstream: ``trellis2/pipelines/trellis2_texturing.py`` (``Trellis2TexturingPipeline``):

1. the mesh, turned into TRELLIS's frame (+Z up), is centred on its bounds and scaled to a
   longest side of 0.99999, then voxelised into the flexible dual grid at the resolution
   (512, 1024 or 1536: voxelize.py);
2. the shape SC-VAE encoder turns the grid into the shape latent (its mean) at 1/16th;
3. the image is framed and encoded by DINOv3 at 512 px for the 512 grid, 1024 px otherwise;
4. the texture flow (the 512 model for 512, the 1024 model otherwise) samples the texture
   latent with the normalised shape latent concatenated (noise from a CPU generator seeded
   with the seed), then it is de-normalised;
5. the texture decoder climbs back up the encoder's own downsamplings, so the PBR voxels are
   exactly the mesh's voxels; ``x / 2 + 1/2``.

The geometry is the artist's, unchanged: the voxels become fields the geometry pipeline bakes
on its UVs (``keep_uvs``) or on new ones. Knows nothing of adapters (see adapter.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from backend.geometry.raw_asset import PointField
from backend.models.trellis.mesh_extraction import TRELLIS_TO_BACKEND
from backend.models.trellis2.config import SHAPE_ENCODER, TEX_DECODER, TEX_FLOW_512, TEX_FLOW_1024
from backend.models.trellis2.pbr_field import PbrVoxels, pbr_fields
from backend.models.trellis2.sampler import Trellis2SamplerSettings
from backend.models.trellis2.sc_encoder import subdivisions
from backend.models.trellis2.voxelize import mesh_to_dual_grid, normalise_mesh
from shared_protocol.errors import ErrorCode, ProtocolError

Progress = Callable[[str, int, int], None]
TEXTURE_STAGES = ("voxelize", "encode", "condition", "texture", "decode")
RESOLUTIONS = (512, 1024, 1536)


@dataclass(frozen=True)
class TextureRequest:
    vertices: np.ndarray  # (V, 3) backend frame
    faces: np.ndarray
    image: np.ndarray  # (h, w, 4) cut-out
    seed: int = 0
    resolution: int = 1024
    texture: Trellis2SamplerSettings | None = None  # None: pipeline.json's


@dataclass
class TextureOutput:
    pbr: PbrVoxels
    centre: np.ndarray  # TRELLIS frame, before scaling
    scale: float
    voxels: int  # the mesh's grid voxels
    tokens: int  # the latent's voxels


@torch.no_grad()
def texture_mesh(pipeline, request: TextureRequest, progress: Progress) -> TextureOutput:
    """Run the stages above with ``pipeline``'s networks (a Trellis2Pipeline)."""
    networks = pipeline.networks
    encoder = networks.get(SHAPE_ENCODER)
    if encoder is None:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING, "texturing a mesh needs TRELLIS.2's shape encoder",
            hint="Run `dreamcad-backend download trellis2-4b --with encoder`.",
        )  # fmt: skip
    if request.resolution not in RESOLUTIONS:
        raise ValueError(f"resolution {request.resolution} is not one of {RESOLUTIONS}")
    decoder = networks[TEX_DECODER]
    if encoder.downsamplings != decoder.upsamplings:
        raise ProtocolError(ErrorCode.MODEL_FAILED, "shape encoder and texture decoder disagree")
    high = request.resolution != 512
    if high and TEX_FLOW_1024 not in networks:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING, "texturing above 512 needs the 1024 texture flow",
            hint="Use resolution 512, or download the cascade flows.",
        )  # fmt: skip
    flow = networks[TEX_FLOW_1024 if high else TEX_FLOW_512]
    # The 512 flow's latent grid times the decoder's 16x is the "512" grid (32 * 16 in the
    # release; smaller for the tiny test weights), 1024 and 1536 are 2x and 3x it.
    low = networks[TEX_FLOW_512].resolution * 2**decoder.upsamplings
    grid = low * request.resolution // 512

    progress("voxelize", 0, 1)
    to_trellis = np.asarray(TRELLIS_TO_BACKEND)  # backend = R trellis: rows @ R
    points = np.asarray(request.vertices, np.float64) @ to_trellis
    centre, scale = normalise_mesh(points)
    try:
        dual = mesh_to_dual_grid((points - centre) * scale, request.faces, grid)
    except ValueError as error:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"the mesh cannot be voxelised: {error}", field="mesh"
        ) from error
    progress("voxelize", 1, 1)

    progress("encode", 0, 1)
    device = pipeline.device
    coords = torch.from_numpy(dual.coords).to(device)
    coords = torch.cat([torch.zeros_like(coords[:, :1]), coords], dim=1).int()
    shape, levels = encoder.encode_grid(
        coords, torch.from_numpy(dual.offsets).to(device),
        torch.from_numpy(dual.intersected).to(device),
    )  # fmt: skip
    progress("encode", 1, 1)

    progress("condition", 0, 1)
    cond = pipeline.conditioner.encode([request.image], 1024 if high else 512)
    progress("condition", 1, 1)

    config = pipeline.config
    generator = torch.Generator("cpu").manual_seed(request.seed)
    normalised = pipeline._normalise(shape, config.shape_mean, config.shape_std)
    latent = pipeline._flow(
        "texture", flow, shape.coords, cond, request.texture, generator, progress,
        concat=normalised,
    )  # fmt: skip
    latent = pipeline._denormalise(latent, config.tex_mean, config.tex_std)

    progress("decode", 0, 1)
    feats = decoder.run(latent, guide_subs=subdivisions(levels))[0]
    attributes = (feats.feats.float() * 0.5 + 0.5).cpu().numpy()
    pbr = PbrVoxels.from_voxels(feats.coords[:, 1:].cpu().numpy(), attributes, grid)
    progress("decode", 1, 1)
    return TextureOutput(pbr, centre, scale, len(dual.coords), len(shape))


def texture_fields(output: TextureOutput) -> tuple[PointField, PointField, PointField]:
    """(colour, material, alpha) over points (k, 3) in the backend frame of the input mesh."""
    return pbr_fields(output.pbr, (output.centre, output.scale))
