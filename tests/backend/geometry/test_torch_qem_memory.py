"""The torch decimator's memory: no buffer it makes grows with the ring faces of a round.

A GPU job's peak memory is the decimator's biggest buffers alive together; the first version
built every ring face's corners (about 7 ring faces per input face, nine float64 each) and
every half-edge's plane terms at once, ~3.8 KB per input face in all (18 GiB for a 5M-face
TRELLIS mesh). Those steps now run in slices, so the biggest single buffer is an index array
over the rings or the edges: this bounds it, on the CPU run of the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from backend.geometry import clean, decimate

torch = pytest.importorskip("torch")
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from backend.geometry import torch_qem  # noqa: E402

BYTES_PER_FACE = 96  # the biggest buffer: the rings' neighbour indices, ~58 B per input face


class LargestBuffer(TorchDispatchMode):
    """Records the largest storage any operator creates (bytes) and which operator."""

    def __init__(self) -> None:
        super().__init__()
        self.largest, self.where = 0, ""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                size = leaf.untyped_storage().nbytes()
                if size > self.largest:
                    self.largest, self.where = size, str(func)
        return out


def test_no_decimation_buffer_grows_with_the_rings(blob_mesh, monkeypatch):
    monkeypatch.setenv("DREAMCAD_COMPILE", "0")  # eager: every buffer is a real one
    # Slices as small as on a multi-million-face mesh: ``SLICES`` of them, not the minimum.
    monkeypatch.setattr(torch_qem, "MIN_SLICE", 1024, raising=False)
    cleaned = clean.clean_mesh(*blob_mesh)
    faces = len(cleaned.faces)
    with LargestBuffer() as largest:
        _, out, _, _ = torch_qem.collapse(cleaned.vertices, cleaned.faces, 3000)
    assert decimate.within_tolerance(len(out), 3000)
    per_face = largest.largest / faces
    assert per_face <= BYTES_PER_FACE, (per_face, largest.where)


def test_one_slice_rounds_take_the_merged_calls_with_the_same_answer(blob_mesh, monkeypatch):
    # A round whose edges and rings fit one slice prices and checks them in one call each
    # (_price_all, _rings_bad); sliced rounds make the same arrays piece by piece.
    monkeypatch.setenv("DREAMCAD_COMPILE", "0")
    cleaned = clean.clean_mesh(*blob_mesh)
    merged_calls: list[str] = []
    for name in ("_price_all", "_rings_bad"):
        real = getattr(torch_qem, name)
        def recorded(*args: Any, _name: str = name, _real: Any = real) -> Any:
            merged_calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(torch_qem, name, recorded)
    monkeypatch.setattr(torch_qem, "MIN_SLICE", 1 << 30, raising=False)  # every round: one slice
    whole = torch_qem.collapse(cleaned.vertices, cleaned.faces, 3000)
    assert {"_price_all", "_rings_bad"} <= set(merged_calls)
    merged_calls.clear()
    monkeypatch.setattr(torch_qem, "MIN_SLICE", 1, raising=False)  # every round: 16 slices
    sliced = torch_qem.collapse(cleaned.vertices, cleaned.faces, 3000)
    assert not merged_calls
    for a, b in zip(whole, sliced, strict=True):
        np.testing.assert_array_equal(a, b)
