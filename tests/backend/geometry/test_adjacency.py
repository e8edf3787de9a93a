"""Adjacency: face pairs across two-face edges, checked against a plain dictionary count."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backend.geometry import adjacency
from backend.geometry.adjacency import (
    component_labels,
    face_components,
    manifold_face_pairs,
    union_find,
)
from tests.support.analytic_meshes import marching_cubes_mesh, sphere_field


def _pairs_by_dictionary(faces: np.ndarray) -> set[tuple[int, int, bool]]:
    """Reference: edges used by exactly two faces, from a plain dictionary of edge users."""
    users: dict[tuple[int, int], list[tuple[int, bool]]] = {}
    for f, face in enumerate(faces.tolist()):
        for k in range(3):
            u, w = face[k], face[(k + 1) % 3]
            users.setdefault((min(u, w), max(u, w)), []).append((f, u < w))
    pairs = set()
    for found in users.values():
        if len(found) == 2:
            (f, fwd_f), (g, fwd_g) = sorted(found)
            pairs.add((f, g, fwd_f == fwd_g))
    return pairs


def test_manifold_face_pairs_match_a_dictionary_count() -> None:
    rng = np.random.default_rng(7)
    vertices, faces = marching_cubes_mesh(sphere_field, 16)
    # Add non-manifold fins (a third face on existing edges) and a few flipped faces.
    extra = np.column_stack([faces[:40, 0], faces[:40, 1], rng.integers(0, len(vertices), 40)])
    faces = np.concatenate([faces, extra])
    faces[rng.choice(len(faces), 25, replace=False)] = faces[rng.choice(len(faces), 25)][:, ::-1]
    a, b, disagree = manifold_face_pairs(faces, len(vertices))
    assert set(zip(a.tolist(), b.tolist(), disagree.tolist(), strict=True)) == (
        _pairs_by_dictionary(faces)
    )
    assert len(a) > 500 and disagree.any() and not disagree.all()


def _messy_sphere() -> tuple[np.ndarray, np.ndarray]:
    """A sphere with third faces on some edges (fins) and some faces turned over."""
    rng = np.random.default_rng(7)
    vertices, faces = marching_cubes_mesh(sphere_field, 24)
    extra = np.column_stack([faces[:40, 0], faces[:40, 1], rng.integers(0, len(vertices), 40)])
    faces = np.concatenate([faces, extra])
    faces[rng.choice(len(faces), 25, replace=False)] = faces[rng.choice(len(faces), 25)][:, ::-1]
    return vertices, faces


def _ordered_pairs(faces: np.ndarray) -> list[tuple[int, int, bool]]:
    """Reference order: by the lower face, then by its edge (k: corner k to k + 1)."""
    users: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}
    for f, face in enumerate(faces.tolist()):
        for k in range(3):
            u, w = face[k], face[(k + 1) % 3]
            users.setdefault((min(u, w), max(u, w)), []).append((f, k, u < w))
    pairs = []
    for found in users.values():
        if len(found) == 2:
            (f, k, fwd_f), (g, _, fwd_g) = sorted(found)
            pairs.append((f, k, g, fwd_f == fwd_g))
    return [(f, g, same) for f, _, g, same in sorted(pairs)]


@pytest.fixture
def small_chunks(monkeypatch):
    """Many chunks and vertex ranges even on a small mesh, so the parallel splits are used."""
    monkeypatch.setattr(adjacency, "_CHUNK", 997)
    monkeypatch.setattr(adjacency, "_BUCKET_BITS", 4)


def test_manifold_face_pairs_come_in_edge_order_for_any_thread_count(small_chunks) -> None:
    vertices, faces = _messy_sphere()
    expected = _ordered_pairs(faces)
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            a, b, disagree = manifold_face_pairs(faces, len(vertices))
            got = list(zip(a.tolist(), b.tolist(), disagree.tolist(), strict=True))
            assert got == expected, threads
            assert a.dtype == b.dtype == np.int64 and disagree.dtype == np.bool_
    finally:
        numba.set_num_threads(before)


def test_vertex_faces_list_each_vertex_faces_in_order(small_chunks) -> None:
    vertices, faces = _messy_sphere()
    faces = np.concatenate([faces, [[3, 3, 5], [9, 8, 9]]])  # repeated vertices: listed twice
    start, around = adjacency.vertex_faces(faces, len(vertices))
    corner_vertex = faces.reshape(-1)
    order = np.argsort(corner_vertex, kind="stable")
    assert np.array_equal(around, order // 3)
    assert np.array_equal(
        start, np.searchsorted(corner_vertex[order], np.arange(len(vertices) + 1))
    )


def test_face_components_count_pieces() -> None:
    vertices, faces = marching_cubes_mesh(sphere_field, 12)
    shifted = faces + len(vertices)
    count, labels = face_components(np.concatenate([faces, shifted]), 2 * len(vertices))
    assert count == 2
    assert set(labels[: len(faces)]) == {labels[0]} and labels[0] != labels[-1]


def test_component_labels_number_pieces_as_scipy_does() -> None:
    """The union-find labels equal scipy's connected_components labels exactly (same pieces,
    same numbering), isolated elements and repeated or self pairs included."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(11)
    for n, pairs in ((1, 0), (50, 0), (300, 120), (2000, 1500), (2000, 6000)):
        a, b = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
        graph = coo_matrix((np.ones(pairs, np.int32), (a, b)), (n, n))
        expected = connected_components(graph, directed=False)[1]
        labels = component_labels(n, a, b)
        assert labels.dtype == np.int64 and np.array_equal(labels, expected), (n, pairs)


def test_face_components_number_pieces_by_lowest_vertex() -> None:
    vertices, faces = marching_cubes_mesh(sphere_field, 10)
    # Piece 1 uses the high vertex numbers but comes first in the face list.
    both = np.concatenate([faces + len(vertices), faces])
    count, labels = face_components(both, 2 * len(vertices))
    assert count == 2
    assert np.array_equal(labels, np.repeat([1, 0], len(faces)))


def test_union_find_in_chunks_matches_one_pass_on_any_thread_count(monkeypatch) -> None:
    """Pairs in many chunks on 1 and 2 threads (links may race): the roots of one serial pass
    (each piece's lowest element), for pairs and for faces' corners alike."""
    monkeypatch.setattr(adjacency, "_CHUNK", 97)
    rng = np.random.default_rng(4)
    n = 30000
    a, b = rng.integers(0, n, 20000), rng.integers(0, n, 20000)
    faces = rng.integers(0, n, (9000, 3))
    expected = union_find(n, a, b)  # one chunk: the serial pass
    expected_faces = union_find(n, faces[:, :2].ravel(), faces[:, 1:].ravel())
    assert len(np.unique(expected)) > 100
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            for chunks in (3, 64, 256):
                assert np.array_equal(union_find(n, a, b, chunks), expected)
                assert np.array_equal(adjacency._union_faces(n, faces, chunks), expected_faces)
            assert np.array_equal(
                component_labels(n, a, b), np.unique(expected, return_inverse=True)[1]
            )
    finally:
        numba.set_num_threads(before)


def test_split_pairs_finds_a_lost_link() -> None:
    from backend.geometry.adjacency import _split_pairs

    parent = np.array([0, 0, 2, 2, 4])  # settled; pair (1, 3) joins two roots: a lost link
    a, b = np.array([[0], [1], [2]]), np.array([[1], [3], [3]])
    assert _split_pairs(parent, a, b, 3).tolist() == [1]
    assert _split_pairs(parent, a[[0, 2]], b[[0, 2]], 2).tolist() == []
