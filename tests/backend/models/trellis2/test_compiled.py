"""The compiled flows (``Trellis2Pipeline.compile_blocks``) give eager's samples.

In float32: in the stored bf16, an attention over identical keys (the negative condition is
zeros) averages identical values with a different rounding, one bf16 ulp, which sampling
carries on; in float32 that is ~1e-7 and a wrong fusion would show far above it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from backend.models.trellis2.pipeline import Trellis2Pipeline, Trellis2Request


def _run(pipeline: Trellis2Pipeline, request: Trellis2Request) -> tuple[torch.Tensor, ...]:
    out = pipeline.run(request, lambda *_: None)
    return out.coords, out.shape_latent.feats, out.texture_latent.feats


def test_compiled_blocks_reproduce_the_eager_samples(
    tiny_trellis2: tuple[Path, dict[str, Path]],
) -> None:
    folder, components = tiny_trellis2
    pipeline = Trellis2Pipeline.from_folder(
        folder,
        dinov3_folder=components["dinov3"],
        shared_folders=[components["decoders"]],
        dtype=torch.float32,
    )
    steps = {
        stage: dataclasses.replace(pipeline.config.samplers[role].settings, steps=2)
        for stage, role in (("structure", "sparse_structure_sampler"),
                            ("shape", "shape_slat_sampler"), ("texture", "tex_slat_sampler"))
    }  # fmt: skip
    image = np.zeros((64, 64, 4), np.uint8)
    image[16:48, 16:48] = (200, 120, 40, 255)
    request = Trellis2Request(images=(image,), seed=3, **steps)
    eager = _run(pipeline, request)
    pipeline.compile_blocks()
    compiled = _run(pipeline, request)
    assert torch.equal(eager[0], compiled[0])  # the same structure voxels
    for a, b in zip(eager[1:], compiled[1:], strict=True):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-4
    blocks = pipeline.networks["shape_slat_flow_model_512"].blocks
    assert all(block._compiled_call_impl is not None for block in blocks)
