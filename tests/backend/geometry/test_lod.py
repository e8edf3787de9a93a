"""LOD chain: each level about half the faces, no cracks at seams, no folded UVs, LOD0's UVs."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, decimate, lod, quality, uv


@pytest.fixture(scope="module")
def mapped_blob(blob_mesh) -> uv.UVResult:
    cleaned = clean.clean_mesh(*blob_mesh)
    reduced = decimate.decimate(cleaned.vertices, cleaned.faces, 6000)
    return uv.unwrap(reduced.vertices, reduced.faces, 512)


def test_targets_halve_down_to_the_minimum():
    assert lod.lod_targets(20_000, 3) == [10_000, 5_000, 2_500]
    assert lod.lod_targets(10, 3) == [5, decimate.MIN_TARGET_FACES, decimate.MIN_TARGET_FACES]


def test_each_level_halves_and_stays_a_closed_surface(mapped_blob):
    levels = lod.lod_chain(
        mapped_blob.vertices, mapped_blob.faces, mapped_blob.uvs, mapped_blob.source_vertex, 3
    )
    assert mapped_blob.charts > 5  # seams to keep consistent
    previous = len(mapped_blob.faces)
    for level in levels:
        assert level.reached, (len(level.faces), level.target)
        assert len(level.faces) == pytest.approx(previous / 2, rel=0.03)
        previous = len(level.faces)
        used, faces = lod.compact(level.faces, len(mapped_blob.vertices))
        # Weld the seam copies: a crack between two charts would show as a border edge.
        kept, welded = clean.weld_vertices(mapped_blob.vertices[used], faces, 1e-9)
        shape = quality.topology(mapped_blob.vertices[used][kept], welded)
        assert shape["watertight"] and shape["euler"] == 2
        assert uv.count_flipped(mapped_blob.uvs[used], faces) == 0


def test_levels_use_lod0_vertices_and_uvs_as_they_are(mapped_blob):
    level = lod.lod_chain(
        mapped_blob.vertices, mapped_blob.faces, mapped_blob.uvs, mapped_blob.source_vertex, 1
    )[0]
    # Every corner is a split vertex of LOD0, in a chart its face's neighbours on LOD0 had:
    # the UV of a corner is projected from that vertex's own position, so it is the right one.
    corners = level.faces.reshape(-1)
    assert corners.max() < len(mapped_blob.vertices)
    charts_of_vertex = np.full(len(mapped_blob.vertices), -1)
    charts_of_vertex[mapped_blob.faces.reshape(-1)] = np.repeat(mapped_blob.chart, 3)
    corner_charts = charts_of_vertex[level.faces]
    assert np.all(corner_charts == corner_charts[:, :1])  # one chart per face: no seam jumps


def test_surface_stays_near_the_original(mapped_blob, blob_mesh):
    levels = lod.lod_chain(
        mapped_blob.vertices, mapped_blob.faces, mapped_blob.uvs, mapped_blob.source_vertex, 2
    )
    errors = [
        quality.surface_distance(blob_mesh, (mapped_blob.vertices, level.faces))[
            "mean_distance_pct"
        ]
        for level in levels
    ]
    assert errors[0] < errors[1] < 0.2


def test_flat_sheet_with_zero_and_rounding_costs_finishes():
    # Every collapse on a plane costs zero up to rounding (some slightly negative): the queue
    # must still drain to the target (it once re-queued a negative cost for ever).
    n = 41
    grid = np.stack(np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij"), -1)
    points = grid.reshape(-1, 2)
    vertices = np.column_stack([points, 1e-7 * np.sin(points.sum(axis=1) * 40)])
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = (i * n + j).reshape(-1)
    quads = np.stack([a, a + n, a + n + 1, a + 1], axis=1)
    faces = np.vstack([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    uvs = np.column_stack([points[:, 0], 1.0 - points[:, 1]])  # glTF: v runs down
    assert uv.count_flipped(uvs, faces) == 0
    levels = lod.lod_chain(vertices, faces, uvs, np.arange(len(points)), 3)
    assert [level.target for level in levels] == [1600, 800, 400]
    assert all(level.reached for level in levels), [len(level.faces) for level in levels]
    assert all(uv.count_flipped(uvs, level.faces) == 0 for level in levels)
