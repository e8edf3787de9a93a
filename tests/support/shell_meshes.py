"""Meshes with known hidden and visible parts, built from parametric surfaces (no grids to
march, so they are exact and cheap): for the inner-shell tests and the game-ready benchmark.

Every builder returns vertices (n, 3) float64 and faces (m, 3) int64, wound outward.
"""

from __future__ import annotations

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]


def _grid_faces(rows: int, cols: int, wrap_cols: bool) -> np.ndarray:
    """Two triangles per cell of a rows x cols vertex grid (columns wrap when asked)."""
    span = cols if wrap_cols else cols - 1
    i, j = np.meshgrid(np.arange(rows - 1), np.arange(span), indexing="ij")
    a = i * cols + j
    b = i * cols + (j + 1) % cols
    c = (i + 1) * cols + (j + 1) % cols
    d = (i + 1) * cols + j
    quads = np.stack([a, b, c, d], axis=-1).reshape(-1, 4)
    return np.vstack([quads[:, [0, 2, 1]], quads[:, [0, 3, 2]]]).astype(np.int64)


def sphere(radius: float, rows: int = 48, centre=(0.0, 0.0, 0.0)) -> Mesh:
    """A closed latitude-longitude sphere with single pole vertices."""
    cols = 2 * rows
    theta = np.linspace(0, np.pi, rows + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    vertices = np.vstack([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius + np.asarray(centre)
    body = _grid_faces(rows - 1, cols, wrap_cols=True) + 1
    j = np.arange(cols)
    top = np.stack([np.zeros(cols, int), 1 + (j + 1) % cols, 1 + j], axis=1)
    last = len(vertices) - 1
    base = 1 + (rows - 2) * cols
    bottom = np.stack([np.full(cols, last), base + j, base + (j + 1) % cols], axis=1)
    return vertices, np.vstack([top, body, bottom]).astype(np.int64)


def torus(major: float, minor: float, rows: int = 24, cols: int = 64) -> Mesh:
    """A closed torus around the y axis."""
    u = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    v = np.linspace(0, 2 * np.pi, rows, endpoint=False)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    r = major + minor * np.cos(vv)
    vertices = np.stack([r * np.cos(uu), minor * np.sin(vv), r * np.sin(uu)], -1).reshape(-1, 3)
    faces = _grid_faces(rows + 1, cols, wrap_cols=True)
    faces = faces % (rows * cols)  # the last row wraps onto the first
    return vertices, faces[:, ::-1].copy()


def box(half: float, divisions: int = 8) -> Mesh:
    """A closed cube surface, each side a divisions x divisions grid (edge vertices repeated:
    the pipeline's clean welds them)."""
    axis = np.linspace(-half, half, divisions + 1)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    parts = []
    for dim in range(3):
        for sign in (-1.0, 1.0):
            side = np.zeros((a.size, 3))
            others = [d for d in range(3) if d != dim]
            side[:, dim] = sign * half
            side[:, others[0]], side[:, others[1]] = a.reshape(-1), b.reshape(-1)
            faces = _grid_faces(divisions + 1, divisions + 1, wrap_cols=False)
            parts.append(_outward(side, faces, dim, sign))
    return combine(*parts)


def wall(half: float, x: float, divisions: int = 8) -> Mesh:
    """A square sheet in the plane X = x spanning the cube of ``box(half)`` (an inner wall: its
    border lies on the box's surface grid when ``x`` is a grid line)."""
    axis = np.linspace(-half, half, divisions + 1)
    a, b = np.meshgrid(axis, axis, indexing="ij")
    vertices = np.column_stack([np.full(a.size, x), a.reshape(-1), b.reshape(-1)])
    return vertices, _grid_faces(divisions + 1, divisions + 1, wrap_cols=False)


def bowl(radius: float, rows: int = 24) -> Mesh:
    """An open hemispherical sheet, opening upwards (+y): its inside is visible from above."""
    cols = 4 * rows
    theta = np.linspace(np.pi / 2, np.pi, rows + 1)[:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    vertices = np.vstack([ring, [[0, -1, 0]]]) * radius
    body = _grid_faces(rows, cols, wrap_cols=True)
    j = np.arange(cols)
    base = (rows - 1) * cols
    bottom = np.stack([np.full(cols, len(vertices) - 1), base + j, base + (j + 1) % cols], 1)
    return vertices, np.vstack([body, bottom]).astype(np.int64)


def combine(*meshes: Mesh) -> Mesh:
    """One mesh of several (faces re-indexed)."""
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(np.asarray(v, dtype=np.float64))
        faces.append(np.asarray(f, dtype=np.int64) + offset)
        offset += len(v)
    return np.vstack(vertices), np.vstack(faces)


def shift(mesh: Mesh, offset) -> Mesh:
    return mesh[0] + np.asarray(offset, dtype=np.float64), mesh[1]


def _outward(vertices: np.ndarray, faces: np.ndarray, dim: int, sign: float) -> Mesh:
    corners = vertices[faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if np.sign(normal[0, dim]) != sign:
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces)
