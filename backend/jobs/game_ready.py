"""The geometry pipeline's options for a job: the request's budget and game-ready steps.

Every job (generated, textured or optimized) gets its ``keep_inner``, ``lods``, ``quads`` and
``keep_uvs``. A mesh the artist sent is treated as theirs: small separate parts (buttons, eyes)
are not floaters to drop, and ``texture`` keeps the geometry as it is, inner shells included,
reduced only when it is over the protocol's face limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.geometry.raw_asset import RawAsset
from backend.jobs.spec import JobSpec
from shared_protocol.messages import MAX_FACES, MESH_TASKS, SubmitRequest

if TYPE_CHECKING:
    from backend.geometry.pipeline import PipelineOptions


def check_options(message: SubmitRequest) -> None:
    """Refuse, at submit, option combinations the pipeline would refuse after the model ran
    (LODs outside GLB, quads with keep_uvs, quads without the remesher)."""
    from backend.geometry.pipeline import PipelineOptions  # numba-heavy: only when needed

    PipelineOptions(
        target_faces=message.target_faces,
        texture_size=message.texture_size,
        output_format=message.output_format,
        lods=message.lods,
        quads=message.quads,
        keep_uvs=message.keep_uvs,
    ).check()


def pipeline_options(spec: JobSpec, raw: RawAsset, device: str = "cpu") -> PipelineOptions:
    """The PipelineOptions ``spec`` asks for, for the raw output ``raw``, run on ``device``."""
    from backend.geometry.pipeline import PipelineOptions

    options = PipelineOptions(
        target_faces=spec.target_faces,
        texture_size=spec.texture_size,
        pbr=spec.pbr,
        output_format=spec.output_format,
        name=spec.name or raw.name or spec.model,
        keep_inner=spec.keep_inner,
        lods=spec.lods,
        quads=spec.quads,
        keep_uvs=spec.keep_uvs,
        device=device,
    )
    if spec.task in MESH_TASKS:
        options.floater_fraction = 0.0
    if spec.task == "texture":
        options.target_faces = max(options.target_faces, min(len(raw.faces), MAX_FACES))
        options.keep_inner = True
    return options
