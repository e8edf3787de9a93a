"""The encoder's launch savings under autocast, with bit-identical output.

In bf16 on a GPU the encode is bound by how many kernels it launches. Autocast casts every
linear/conv weight and bias at each call, and each block's key/value projections cast the same
float32 image tokens again; :func:`half_weights` and the backbone's single up-front cast remove
those. Checked on the CPU's autocast (the same mechanism; the CUDA one has the same casts for
these modules), by output equality and by counting operators.
"""

from __future__ import annotations

import torch
from torch import nn

from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.half_weights import (
    CAST_MODULES,
    ENCODER_PARTS,
    NEVER_RUN,
    half_weights,
)
from backend.models.triposr.loading import build_empty, load_state
from backend.models.triposr.network import TripoSRNet
from backend.models.triposr.testing import random_state
from benchmarks.op_count import kernel_ops


def _model(tiny: TripoSRConfig) -> TripoSRNet:
    model = build_empty(tiny)
    load_state(model, random_state(tiny, seed=7, scale=1.5))
    return model.eval().requires_grad_(False)


def _cast_parameters(model: TripoSRNet) -> list[nn.Parameter]:
    unused = set(model.get_submodule(NEVER_RUN).modules())
    return [
        param
        for part in ENCODER_PARTS
        for module in getattr(model, part).modules()
        if isinstance(module, CAST_MODULES) and module not in unused
        for param in module.parameters(recurse=False)
    ]


@torch.no_grad()
def test_half_weights_give_the_same_triplanes_with_no_weight_casts(tiny: TripoSRConfig) -> None:
    model = _model(tiny)
    images = torch.rand(1, 3, tiny.cond_image_size, tiny.cond_image_size)
    before = [(p, p.dtype) for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(images)
        plain = kernel_ops(lambda: model(images))
        with half_weights(model, torch.bfloat16):
            assert torch.equal(model(images), expected)
            fast = kernel_ops(lambda: model(images))
            assert model.backbone.proj_in.weight.dtype == torch.bfloat16
    # Every weight and bias autocast casts was one copy per forward; none is left.
    assert plain["aten::copy_"] - fast["aten::copy_"] == len(_cast_parameters(model))
    # The float32 parameters are back, the same objects, and float32 runs are unchanged.
    assert [(p, p.dtype) for p in model.parameters()] == before
    assert torch.equal(model(images), model(images))
    # Made once and kept: a second use makes no new copies.
    copies = model.__dict__["_half_weight_copies"]
    with torch.autocast("cpu", dtype=torch.bfloat16), half_weights(model, torch.bfloat16):
        model(images)
    assert model.__dict__["_half_weight_copies"] is copies and len(copies) == 1


@torch.no_grad()
def test_float32_leaves_the_model_alone(tiny: TripoSRConfig) -> None:
    model = _model(tiny)
    with half_weights(model, torch.float32):
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert "_half_weight_copies" not in model.__dict__


@torch.no_grad()
def test_backbone_casts_the_image_tokens_once(tiny: TripoSRConfig) -> None:
    """Given float32 image tokens, the backbone makes one cast of them, not two per block."""
    model = _model(tiny)
    tokens = model.tokenizer(1)
    image_tokens = torch.randn(1, 17, tiny.cross_attention_dim)
    with torch.autocast("cpu", dtype=torch.bfloat16), half_weights(model, torch.bfloat16):
        from_float = kernel_ops(lambda: model.backbone(tokens, image_tokens))
        half_tokens = image_tokens.to(torch.bfloat16)
        from_half = kernel_ops(lambda: model.backbone(tokens, half_tokens))
        assert torch.equal(model.backbone(tokens, image_tokens),
                           model.backbone(tokens, half_tokens))
    assert tiny.num_layers >= 2
    assert from_float["aten::copy_"] - from_half["aten::copy_"] == 1


def test_normalisation_constants_are_made_once(tiny: TripoSRConfig) -> None:
    """Making them is a host-to-device copy, which on CUDA waits for the GPU."""
    model = _model(tiny)
    images = torch.rand(1, 3, tiny.cond_image_size, tiny.cond_image_size)
    first = model.image_tokenizer.statistics(images)
    with torch.no_grad():
        model(images)
    second = model.image_tokenizer.statistics(images)
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert torch.equal(first[0].flatten(), torch.tensor([0.485, 0.456, 0.406]))
