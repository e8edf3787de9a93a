"""Volume decoding and surface extraction on analytic occupancy fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.hunyuan3d.volume import (
    Box,
    decode_dense,
    decode_hierarchical,
    extract_surface,
    flashvdm_resolutions,
    level_resolutions,
    near_surface,
)


def blob(points: torch.Tensor) -> torch.Tensor:
    """Occupancy logits (1, p) of two overlapping balls: positive inside, |logit| grows away."""
    p = points[0].double()
    a = 0.55 - torch.linalg.norm(p - torch.tensor([0.2, 0.0, 0.0], dtype=p.dtype), dim=-1)
    b = 0.4 - torch.linalg.norm(p - torch.tensor([-0.35, 0.2, 0.1], dtype=p.dtype), dim=-1)
    return (torch.maximum(a, b) * 20).float()[None]


def test_levels_follow_upstream() -> None:
    assert level_resolutions(384) == [96, 192, 384]
    assert level_resolutions(40) == [40]
    assert flashvdm_resolutions(384) == [95, 190, 380]
    assert flashvdm_resolutions(256) == [63, 126, 252]


def test_dense_grid_is_ij_ordered() -> None:
    logits = decode_dense(
        lambda p: p[..., 0] + 10 * p[..., 2], Box(1.0, 4), 7, "cpu", torch.float32
    )
    axis = np.linspace(-1, 1, 5)
    assert logits[4, 0, 0] == pytest.approx(axis[4] + 10 * axis[0])
    assert logits[0, 0, 4] == pytest.approx(axis[0] + 10 * axis[4])


def test_octree_decode_finds_the_dense_surface() -> None:
    box = Box(1.01, 96)
    dense = decode_dense(blob, box, 50_000, "cpu", torch.float32)
    queried: list[int] = []

    def counted(points: torch.Tensor) -> torch.Tensor:
        queried.append(points.shape[1])
        return blob(points)

    octree, octree_box = decode_hierarchical(
        counted, box, 50_000, "cpu", torch.float32, levels=[24, 48, 96]
    )
    assert octree_box == box
    assert sum(queried) < 0.25 * 97**3  # the point of the octree
    dense_mesh = extract_surface(dense, box)
    octree_mesh = extract_surface(octree, box)
    np.testing.assert_allclose(octree_mesh[0], dense_mesh[0], atol=1e-5)
    np.testing.assert_array_equal(octree_mesh[1], dense_mesh[1])


def test_near_surface_ignores_unqueried_neighbours() -> None:
    logits = torch.full((5, 5, 5), 5.0)
    logits[2, 2, 3] = -5.0
    valid = torch.ones_like(logits, dtype=torch.bool)
    assert near_surface(logits, 0.0, valid)[2, 2, 2]
    valid[2, 2, 3] = False
    assert not near_surface(logits, 0.0, valid)[2, 2, 2]


def test_surface_is_outward_wound() -> None:
    box = Box(1.01, 48)
    vertices, faces = extract_surface(decode_dense(blob, box, 50_000, "cpu", torch.float32), box)
    triangles = vertices[faces].astype(np.float64)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    # Signed volume > 0 when faces are counter-clockwise seen from outside.
    assert np.einsum("ij,ij->", triangles[:, 0], normals) > 0


def test_empty_field_has_no_surface() -> None:
    box = Box(1.0, 8)
    with pytest.raises(ValueError, match="no surface"):
        extract_surface(torch.ones((9, 9, 9)), box)
