"""RoPE over voxel positions: TRELLIS.2's channel pairing, axis layout and relative property."""

from __future__ import annotations

import math

import torch

from backend.models.sparse import SparseTensor
from backend.models.sparse.rope import apply_rope, rope_phases, sparse_rope_phases


def _reference(x: torch.Tensor, position: tuple[int, int, int]) -> torch.Tensor:
    """Rotate one head vector (D,) pair by pair, written out: pair i = channels (2i, 2i+1)."""
    head_dim = x.shape[0]
    freq_dim = head_dim // 2 // 3
    angles = [
        position[axis] / 10000 ** (j / freq_dim) for axis in range(3) for j in range(freq_dim)
    ]
    angles += [0.0] * (head_dim // 2 - len(angles))
    out = x.clone()
    for i, angle in enumerate(angles):
        a, b = float(x[2 * i]), float(x[2 * i + 1])
        out[2 * i] = a * math.cos(angle) - b * math.sin(angle)
        out[2 * i + 1] = a * math.sin(angle) + b * math.cos(angle)
    return out


def test_matches_the_written_out_rotation() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 16, generator=generator)  # (L, H, D), D = 16: 2 x 3 pairs + 2 padding
    positions = torch.tensor([[3, 1, 7], [0, 5, 2]])
    rotated = apply_rope(x, rope_phases(positions, 16))
    for row, position in enumerate(positions.tolist()):
        expected = _reference(x[row, 0], tuple(position))
        torch.testing.assert_close(rotated[row, 0], expected, atol=1e-5, rtol=1e-5)


def test_scores_depend_on_offsets_only() -> None:
    generator = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 32, generator=generator), torch.randn(1, 1, 32, generator=generator)

    def score(p: list[int], r: list[int]) -> float:
        qp = apply_rope(q, rope_phases(torch.tensor([p]), 32))
        kr = apply_rope(k, rope_phases(torch.tensor([r]), 32))
        return float((qp * kr).sum())

    assert abs(score([1, 2, 3], [4, 4, 4]) - score([5, 6, 7], [8, 8, 8])) < 1e-4
    assert abs(score([1, 2, 3], [4, 4, 4]) - score([1, 2, 3], [4, 4, 5])) > 1e-3


def test_sparse_phases_are_cached_per_coordinate_set() -> None:
    coords = torch.tensor([[0, 1, 2, 3], [0, 4, 5, 6]], dtype=torch.int32)
    x = SparseTensor(torch.zeros(2, 4), coords)
    first = sparse_rope_phases(x, 16)
    assert sparse_rope_phases(x.replace(torch.ones(2, 4)), 16) is first
    torch.testing.assert_close(first, rope_phases(coords[:, 1:], 16))
