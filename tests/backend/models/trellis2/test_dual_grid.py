"""Flexible dual grid -> mesh: against a plain dictionary reference of upstream's rules."""

from __future__ import annotations

import numpy as np
import torch

from backend.models.trellis2.dual_grid import EDGE_NEIGHBOURS, dual_grid_to_mesh


def _reference_faces(coords, intersected, weight) -> set[tuple[int, int, int]]:
    index = {tuple(c): i for i, c in enumerate(coords.tolist())}
    faces = set()
    for i, c in enumerate(coords.tolist()):
        for axis in range(3):
            if not intersected[i, axis]:
                continue
            quad = [index.get(tuple(np.add(c, o))) for o in EDGE_NEIGHBOURS[axis]]
            if None in quad:
                continue
            if weight[quad[0]] * weight[quad[2]] > weight[quad[1]] * weight[quad[3]]:
                split = ((0, 1, 2), (0, 2, 3))
            else:
                split = ((0, 1, 3), (3, 1, 2))
            faces |= {tuple(quad[k] for k in tri) for tri in split}
    return faces


def test_faces_match_the_reference_rules() -> None:
    generator = torch.Generator().manual_seed(0)
    cells = torch.stack(torch.meshgrid(*[torch.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    keep = torch.rand(len(cells), generator=generator) < 0.8
    coords = cells[keep][torch.randperm(int(keep.sum()), generator=generator)]
    intersected = torch.rand(len(coords), 3, generator=generator) < 0.5
    weight = torch.rand(len(coords), 1, generator=generator) + 0.1
    offsets = torch.rand(len(coords), 3, generator=generator)
    mesh = dual_grid_to_mesh(coords, offsets, intersected, weight, resolution=3)
    ours = {tuple(f) for f in mesh.faces.tolist()}
    assert ours == _reference_faces(coords.numpy(), intersected.numpy(), weight[:, 0].numpy())
    assert len(ours) > 0
    expected = (coords.float() + offsets) / 3 - 0.5
    torch.testing.assert_close(mesh.vertices, expected)


def test_missing_neighbour_drops_the_quad() -> None:
    coords = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 1]])  # (0, 1, 0) missing
    flags = torch.tensor([[True, False, False], [False] * 3, [False] * 3])
    mesh = dual_grid_to_mesh(coords, torch.zeros(3, 3), flags, torch.ones(3, 1), 4)
    assert mesh.faces.shape == (0, 3)
    coords = torch.cat([coords, torch.tensor([[0, 1, 0]])])
    flags = torch.cat([flags, torch.tensor([[False] * 3])])
    mesh = dual_grid_to_mesh(coords, torch.zeros(4, 3), flags, torch.ones(4, 1), 4)
    assert sorted(map(tuple, mesh.faces.tolist())) == [(0, 1, 3), (3, 1, 2)]  # tie: 1-3 split
