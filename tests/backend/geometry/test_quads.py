"""Quad remesh: pure quads near the budget, written as recoverable pairs; clear coded errors.

The remesh itself needs pynanoinstantmeshes (skipped, with the reason, where it is missing).
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, quads, quality
from shared_protocol.errors import ErrorCode, ProtocolError

needs_library = pytest.mark.skipif(not quads.available(), reason="pynanoinstantmeshes missing")


def test_pairs_share_the_shorter_diagonal_and_keep_the_winding():
    # A unit square and a long thin quad (its shorter diagonal is b-d).
    vertices = np.array(
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [3, 0, 0], [4, 0.1, 0], [3, 0.2, 0],
         [-1, 0.1, 0]], dtype=np.float64,
    )  # fmt: skip
    square_and_thin = np.array([[0, 1, 2, 3], [7, 4, 5, 6]])
    paired = quads.pair_faces(vertices, square_and_thin)
    assert paired.shape == (4, 3)
    for index, quad in enumerate(square_and_thin):
        first, second = set(paired[2 * index]), set(paired[2 * index + 1])
        assert first | second == set(quad) and len(first & second) == 2
    assert set(paired[2]) & set(paired[3]) == {4, 6}  # the short diagonal of the thin quad
    corners = vertices[paired]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.all(normals[:, 2] > 0)  # counter-clockwise like the quads


def test_missing_library_is_a_clear_error():
    if quads.available():
        quads.check_available()  # no error where it is installed
        return
    with pytest.raises(ProtocolError) as caught:
        quads.check_available()
    assert caught.value.code == ErrorCode.INVALID_FIELD and caught.value.field == "quads"
    assert "pip install pynanoinstantmeshes" in caught.value.hint


@needs_library
def test_blob_becomes_a_closed_all_quad_surface(blob_mesh):
    cleaned = clean.clean_mesh(*blob_mesh)
    result, count = quads.remesh_to_pairs(cleaned.vertices, cleaned.faces, 3000)
    assert len(result.faces) == 2 * count
    assert abs(len(result.faces) - 3000) < 0.1 * 3000
    shape = quality.topology(result.vertices, result.faces)
    assert shape["watertight"] and shape["pieces"] == 1 and shape["zero_area_faces"] == 0
    assert clean.signed_volumes(result.vertices, result.faces).sum() > 0  # outward
    assert quality.surface_distance(blob_mesh, (result.vertices, result.faces))[
        "mean_distance_pct"
    ] < 0.2


@needs_library
@pytest.mark.parametrize(
    ("vertices", "faces", "reason"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), "empty"),
        (np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]]), "no area"),
        (np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 5]]), "past"),
    ],
)
def test_inputs_it_cannot_take_are_refused_before_it_runs(vertices, faces, reason):
    with pytest.raises(ProtocolError) as caught:
        quads.remesh(vertices, faces, 100)
    assert caught.value.code == ErrorCode.GEOMETRY_FAILED and reason in str(caught.value)
    assert caught.value.hint == quads.FAILED_HINT


@needs_library
def test_a_failing_remesher_process_is_a_coded_error(sphere_mesh, monkeypatch):
    # The child gets too little memory to even start: the real failure path, coded.
    monkeypatch.setattr(quads, "CHILD_MEMORY_BYTES", 64 * 2**20)
    with pytest.raises(ProtocolError) as caught:
        quads.remesh(*sphere_mesh, 1000)
    assert caught.value.code == ErrorCode.GEOMETRY_FAILED and caught.value.field == "quads"
