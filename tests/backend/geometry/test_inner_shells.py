"""Inner shells: hidden shells built into the test go, visible parts (however placed) stay."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, inner_shells, quality
from tests.support import shell_meshes as shapes


def _cleaned(*meshes) -> clean.CleanResult:
    # No floater removal: the tests choose exactly which pieces are there.
    return clean.clean_mesh(*shapes.combine(*meshes), floater_fraction=0.0)


def _hidden_centres(cleaned: clean.CleanResult, found) -> np.ndarray:
    return cleaned.vertices[cleaned.faces[found.hidden]].mean(axis=1)


def test_sphere_inside_a_sphere_goes_whole():
    cleaned = _cleaned(shapes.sphere(1.0), shapes.sphere(0.5))
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.patches == 2 and found.hidden_patches == 1
    radius = np.linalg.norm(_hidden_centres(cleaned, found), axis=1)
    assert found.hidden_faces == len(cleaned.faces) // 2  # both spheres have the same faces
    assert radius.max() < 0.51  # exactly the inner sphere


def test_duplicated_inner_wall_goes():
    # A copy of the box's +x side just inside it: a separate sheet no view can reach.
    cleaned = _cleaned(shapes.box(1.0), shapes.wall(0.98, 0.97))
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.hidden_patches == 1
    assert np.allclose(_hidden_centres(cleaned, found)[:, 0], 0.97)
    assert found.hidden_faces == len(shapes.wall(0.98, 0.97)[1])


def test_wall_built_into_the_box_goes_and_the_box_stays_closed():
    # The wall's border is welded to the box: it hangs on non-manifold edges, so it is its own
    # patch, and removing it leaves the box watertight.
    cleaned = _cleaned(shapes.box(1.0), shapes.wall(1.0, 0.0))
    assert quality.topology(cleaned.vertices, cleaned.faces)["non_manifold_edges"] > 0
    kept, found = inner_shells.remove_inner_shells(cleaned)
    assert np.allclose(_hidden_centres(cleaned, found)[:, 0], 0.0)
    after = quality.topology(kept.vertices, kept.faces)
    assert after["watertight"] and after["pieces"] == 1 and after["euler"] == 2
    assert kept.report["inner_faces"] == found.hidden_faces > 0


def test_torus_inside_a_box_goes():
    cleaned = _cleaned(shapes.box(1.0), shapes.torus(0.6, 0.2))
    kept, found = inner_shells.remove_inner_shells(cleaned)
    assert found.hidden_faces == len(shapes.torus(0.6, 0.2)[1])
    assert len(kept.faces) == len(cleaned.faces) - found.hidden_faces
    assert np.abs(kept.vertices).max() == pytest.approx(1.0)  # only the box is left


def test_open_bowl_keeps_its_inside_and_what_lies_in_it():
    # The ball can only be seen through the bowl's opening: it must stay, as must the bowl.
    cleaned = _cleaned(shapes.bowl(1.0), shapes.sphere(0.3, centre=(0.0, -0.69, 0.0)))
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.patches == 2 and found.hidden_faces == 0


def test_sub_pixel_needle_next_to_a_body_is_kept():
    # A closed sliver far thinner than a view pixel, sticking out beside a sphere.
    needle_vertices, needle_faces = shapes.sphere(1.0, rows=6)
    needle = (needle_vertices * [1e-5, 0.01, 1e-5] + [0.0, 1.02, 0.0], needle_faces)
    cleaned = _cleaned(shapes.sphere(1.0), needle)
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.patches == 2 and found.hidden_faces == 0


def test_one_body_is_not_drawn_at_all():
    cleaned = _cleaned(shapes.sphere(1.0))
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.patches == 1 and found.views == 0 and found.hidden_faces == 0


def test_attributes_follow_the_faces_that_stay():
    vertices, faces = shapes.combine(shapes.sphere(1.0, rows=16), shapes.sphere(0.5, rows=16))
    tag = vertices[:, :2].copy()  # any per-vertex value tied to the vertex's position
    corner_tag = vertices[faces][:, :, 2:]  # a per-corner value, e.g. UVs
    cleaned = clean.clean_mesh(
        vertices, faces, {"tag": tag}, {"corner": corner_tag}, floater_fraction=0.0
    )
    kept, found = inner_shells.remove_inner_shells(cleaned)
    assert found.hidden_faces > 0 and len(kept.vertices) < len(cleaned.vertices)
    np.testing.assert_allclose(kept.attributes["tag"], kept.vertices[:, :2], atol=1e-6)
    np.testing.assert_allclose(
        kept.corner_attributes["corner"][..., 0], kept.vertices[kept.faces][..., 2], atol=1e-6
    )
    assert np.linalg.norm(kept.vertices, axis=1).min() > 0.99  # the outer sphere only


def _full_drawing_hidden(cleaned: clean.CleanResult) -> np.ndarray:
    """The answer over all views, drawn without stopping: the reference for the rounds."""
    faces, vertices = cleaned.faces, cleaned.vertices
    count, patch = inner_shells.surface_patches(faces, len(vertices))
    seen_face, outside = inner_shells.visible_from_outside(vertices, faces, 48, 512)
    seen = np.zeros(count, dtype=bool)
    seen[patch[seen_face]] = True
    lowest, highest = inner_shells._vertex_patch_range(faces, patch, len(vertices))
    seen[lowest[outside & (lowest == highest)]] = True
    return ~seen[patch]


def test_drawing_stops_once_every_patch_is_seen():
    # Two bodies side by side: both seen in the first round of views, so the rest of the 48
    # are never drawn, and the answer is the full drawing's.
    cleaned = _cleaned(shapes.sphere(1.0), shapes.sphere(0.5, centre=(2.0, 0.0, 0.0)))
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.patches == 2 and found.hidden_faces == 0
    assert 0 < found.views_drawn < found.views == 48
    np.testing.assert_array_equal(found.hidden, _full_drawing_hidden(cleaned))


def test_a_hidden_patch_still_gets_every_view():
    # Something stays unseen, so every view is drawn: no shortcut where one is needed.
    cleaned = _cleaned(shapes.box(1.0), shapes.torus(0.6, 0.2), shapes.bowl(0.5))
    found = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces)
    assert found.hidden_patches >= 1 and found.views_drawn == found.views
    np.testing.assert_array_equal(found.hidden, _full_drawing_hidden(cleaned))


def test_spread_order_is_a_permutation_whose_first_views_face_all_ways():
    order = inner_shells.spread_order(48)
    assert sorted(order) == list(range(48))
    first = inner_shells.view_directions(48)[order[:8]]
    # The lattice's own first eight all look down from the top; these cover both halves.
    assert first[:, 2].max() > 0.5 and first[:, 2].min() < -0.5
