"""torch_normals.py: the bake's source vertex normals on a torch device equal tangents.py's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backend.geometry import tangents, torch_normals  # noqa: E402


def _noisy_sphere(seed: int) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    theta, phi = np.meshgrid(np.linspace(0.1, np.pi - 0.1, 30), np.linspace(0, 2 * np.pi, 41)[:-1])
    points = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)],
                      axis=-1).reshape(-1, 3)  # fmt: skip
    points += generator.normal(scale=0.01, size=points.shape)
    rows, cols = 40, 30
    faces = []
    for i in range(rows):
        for j in range(cols - 1):
            a, b = i * cols + j, ((i + 1) % rows) * cols + j
            faces += [[a, b, a + 1], [a + 1, b, b + 1]]
    return points.astype(np.float32), np.array(faces, dtype=np.int64)


def test_device_normals_are_the_compiled_normals() -> None:
    vertices, faces = _noisy_sphere(0)
    # Degenerate cases the loop skips: a zero-area face, a face with a repeated corner, and
    # a vertex no face uses (it stays zero).
    vertices = np.vstack([vertices, vertices[:1], [[5.0, 5.0, 5.0]]]).astype(np.float32)
    extra = [[0, 1, 2], [3, 3, 4], [0, len(vertices) - 2, 1]]
    faces = np.vstack([faces, extra])
    expected = tangents.vertex_normals(vertices, faces)
    got = torch_normals.vertex_normals(vertices, faces, "cpu")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-6)
    assert np.all(got.numpy()[-1] == 0.0)


def test_flipped_winding_flips_every_normal() -> None:
    vertices, faces = _noisy_sphere(1)
    normal = torch_normals.vertex_normals(vertices, faces, "cpu").numpy()
    flipped = torch_normals.vertex_normals(vertices, faces[:, ::-1].copy(), "cpu").numpy()
    used = np.linalg.norm(normal, axis=1) > 0
    np.testing.assert_allclose(flipped[used], -normal[used], atol=1e-6)
    # Each is a unit vector pointing out of the sphere (the grid's winding is outward or in).
    radial = vertices[used] / np.linalg.norm(vertices[used], axis=1, keepdims=True)
    assert abs(np.mean(np.sum(normal[used] * radial, axis=1))) > 0.95


def test_an_empty_mesh_has_zero_normals() -> None:
    got = torch_normals.vertex_normals(np.zeros((4, 3), np.float32), np.zeros((0, 3), np.int64),
                                       "cpu")  # fmt: skip
    assert got.shape == (4, 3) and not got.any()
