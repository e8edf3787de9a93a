"""UV unwrap: no flipped charts, inside the unit square, good utilization."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, decimate, uv


@pytest.fixture(scope="module")
def reduced_blob(blob_mesh):
    cleaned = clean.clean_mesh(*blob_mesh)
    result = decimate.decimate(cleaned.vertices, cleaned.faces, 4000)
    return result.vertices, result.faces


def test_charts_are_never_mirrored_and_fill_the_atlas(reduced_blob):
    result = uv.unwrap(*reduced_blob, texture_size=1024)
    assert result.flipped_faces == 0
    assert uv.count_flipped(result.uvs, result.faces) == 0
    assert result.uvs.min() >= 0.0 and result.uvs.max() <= 1.0
    assert result.utilization > 0.5
    np.testing.assert_allclose(result.vertices, reduced_blob[0][result.source_vertex])
    assert len(result.faces) == len(reduced_blob[1])


def test_uv_signed_area_sees_a_mirror():
    uvs = np.array([[0, 1], [1, 1], [0, 0]], dtype=np.float32)  # glTF v down: CCW with v up
    faces = np.array([[0, 1, 2]])
    assert uv.count_flipped(uvs, faces) == 0
    assert uv.count_flipped(uvs, faces[:, ::-1]) == 1
