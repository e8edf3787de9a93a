"""Clean: welding, degenerate/duplicate faces, floaters, orientation, hole filling."""

from __future__ import annotations

import numpy as np

from backend.geometry import clean, quality


def test_clean_keeps_a_sound_mesh_intact(sphere_mesh):
    vertices, faces = sphere_mesh
    result = clean.clean_mesh(vertices, faces)
    assert result.report["flipped_faces"] == 0
    assert abs(len(result.faces) - len(faces)) <= 10  # marching cubes' few zero-area faces
    assert quality.topology(result.vertices, result.faces)["watertight"]


def test_welds_split_vertices_and_drops_degenerate_and_duplicate_faces(sphere_mesh):
    vertices, faces = sphere_mesh
    # Every face gets its own three vertices (a "triangle soup"), plus junk faces.
    soup = vertices[faces].reshape(-1, 3)
    soup_faces = np.arange(len(soup)).reshape(-1, 3)
    junk = np.array([[0, 0, 1], soup_faces[5][[1, 2, 0]]])
    result = clean.clean_mesh(soup, np.vstack([soup_faces, junk]), {"c": np.ones((len(soup), 3))})
    assert result.report["welded_vertices"] >= len(soup) - len(vertices)
    assert result.report["duplicate_faces"] >= 1
    assert result.report["degenerate_faces"] >= 1
    assert result.attributes["c"].shape == (len(result.vertices), 3)
    assert quality.topology(result.vertices, result.faces)["watertight"]


def test_removes_floaters_but_keeps_the_body(sphere_mesh):
    vertices, faces = sphere_mesh
    speck = vertices[faces[:3]].reshape(-1, 3) * 0.01 + 2.0
    speck_faces = np.arange(9).reshape(3, 3) + len(vertices)
    result = clean.clean_mesh(np.vstack([vertices, speck]), np.vstack([faces, speck_faces]))
    assert result.report["floater_faces"] == 3
    assert quality.topology(result.vertices, result.faces)["pieces"] == 1
    assert np.all(result.vertices < 1.5)


def test_orients_faces_outward_and_consistently(sphere_mesh):
    vertices, faces = sphere_mesh
    rng = np.random.default_rng(0)
    scrambled = faces[:, ::-1].copy()  # inside out ...
    pick = rng.random(len(faces)) < 0.3  # ... and 30 % of faces turned back
    scrambled[pick] = faces[pick]
    result = clean.clean_mesh(vertices, scrambled, floater_fraction=0)
    corners = result.vertices[result.faces].astype(np.float64)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = np.einsum("ij,ij->i", normals, corners.mean(axis=1))
    assert np.all(outward > 0)


def test_corner_attributes_follow_their_faces(sphere_mesh):
    vertices, faces = sphere_mesh
    corner = vertices[faces][:, :, :2]  # a per-corner value we can check against positions
    result = clean.clean_mesh(vertices, faces[:, ::-1], corner_attributes={"xy": corner[:, ::-1]})
    np.testing.assert_allclose(
        result.corner_attributes["xy"], result.vertices[result.faces][:, :, :2], atol=1e-6
    )


def test_fill_holes_closes_a_cut_sphere(sphere_mesh):
    vertices, faces = sphere_mesh
    centres = vertices[faces].mean(axis=1)
    cut = faces[centres[:, 1] < 0.45]  # a cap removed: one round hole
    assert not quality.topology(vertices, cut)["watertight"]
    result = clean.clean_mesh(
        vertices, cut, {"c": np.ones((len(vertices), 3))}, fill_holes_enabled=True
    )
    assert result.report["holes_filled"] == 1
    assert quality.topology(result.vertices, result.faces)["watertight"]
    assert len(result.attributes["c"]) == len(result.vertices)


def test_split_corners_splits_only_where_corners_disagree():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    uv = np.array([[[0, 0], [1, 0], [0, 1]], [[0.5, 1], [1, 0], [1, 1]]], dtype=np.float32)
    new_faces, values, source = clean.split_corners(vertices, faces, uv)
    assert len(values) == 5  # vertex 2 has two UVs, vertex 1 one
    np.testing.assert_array_equal(source[new_faces], faces)
    np.testing.assert_allclose(values[new_faces], uv)
