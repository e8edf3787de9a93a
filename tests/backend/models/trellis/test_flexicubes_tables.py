"""The generated Dual Marching Cubes tables: properties derived here a second, independent way.

The patches are recomputed from the corners instead of the edges: inside corners connect along
cube edges only, outside corners along cube edges and across the diagonal of an ambiguous face
(the table keeps inside corners apart there), and each patch is the set of sign-change edges
between one inside region and one outside region.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from backend.models.trellis import flexicubes_tables as tables

CASES = range(256)


def _inside(case: int) -> list[bool]:
    return [bool(case >> c & 1) for c in range(8)]


def _position(corner: int) -> tuple[int, int, int]:
    return tables.CORNERS[corner]


def _crossing_edges(case: int) -> set[int]:
    inside = _inside(case)
    return {e for e, (a, b) in enumerate(tables.EDGES) if inside[a] != inside[b]}


def _alternating_faces(case: int) -> list[tuple[int, int]]:
    """(axis, side) of faces whose four corners alternate in sign."""
    inside = _inside(case)
    faces = []
    for axis, side in itertools.product(range(3), (0, 1)):
        corners = [c for c in range(8) if _position(c)[axis] == side]
        diagonal = {c for c in corners if sum(_position(c)) % 2 == 0}
        signs_on = {inside[c] for c in diagonal}
        signs_off = {inside[c] for c in corners if c not in diagonal}
        if len(signs_on) == 1 and len(signs_off) == 1 and signs_on != signs_off:
            faces.append((axis, side))
    return faces


def _regions(case: int, side: bool) -> list[frozenset[int]]:
    """Connected corner sets of one sign (module docstring)."""
    inside = _inside(case)
    members = [c for c in range(8) if inside[c] == side]
    links = [
        (a, b)
        for a, b in itertools.combinations(members, 2)
        if sum(p != q for p, q in zip(_position(a), _position(b), strict=True)) == 1
    ]
    if not side:
        for axis, face_side in _alternating_faces(case):
            on_face = [c for c in members if _position(c)[axis] == face_side]
            links.append((on_face[0], on_face[1]))
    region = {c: frozenset([c]) for c in members}
    for a, b in links:
        merged = region[a] | region[b]
        for c in merged:
            region[c] = merged
    return list(set(region.values()))


def _patches_from_regions(case: int) -> set[frozenset[int]]:
    patches = set()
    for inner, outer in itertools.product(_regions(case, True), _regions(case, False)):
        edges = frozenset(
            e for e, (a, b) in enumerate(tables.EDGES) if {a, b} & inner and {a, b} & outer
        )
        if edges:
            patches.add(edges)
    return patches


def _groups(case: int) -> list[list[int]]:
    return [[e for e in row if e >= 0] for row in tables.DMC_TABLE[case] if row[0] >= 0]


def test_corners_x_fastest_and_edges_join_neighbours() -> None:
    assert tables.CORNERS[1] == (1, 0, 0) and tables.CORNERS[2] == (0, 1, 0)
    assert tables.CORNERS[4] == (0, 0, 1)
    assert len(set(map(frozenset, tables.EDGES))) == 12
    axes = Counter()
    for a, b in tables.EDGES:
        differ = [i for i in range(3) if _position(a)[i] != _position(b)[i]]
        assert len(differ) == 1
        axes[differ[0]] += 1
        # FlexiCubes' orientation: x and z edges go up, y edges go down.
        step = _position(b)[differ[0]] - _position(a)[differ[0]]
        assert step == (-1 if differ[0] == 1 else 1)
    assert axes == {0: 4, 1: 4, 2: 4}


@pytest.mark.parametrize("case", CASES)
def test_groups_partition_the_sign_change_edges(case: int) -> None:
    groups = _groups(case)
    flat = [e for g in groups for e in g]
    assert len(flat) == len(set(flat))
    assert set(flat) == _crossing_edges(case)
    assert tables.NUM_VD_TABLE[case] == len(groups)
    assert all(g == sorted(g) and 3 <= len(g) <= tables.MAX_GROUP_EDGES for g in groups)


@pytest.mark.parametrize("case", CASES)
def test_groups_are_the_interfaces_between_corner_regions(case: int) -> None:
    assert {frozenset(g) for g in _groups(case)} == _patches_from_regions(case)


@pytest.mark.parametrize("case", CASES)
def test_each_patch_crosses_every_face_an_even_number_of_times(case: int) -> None:
    # A closed polygon on the cube's surface enters and leaves each face.
    for group in _groups(case):
        for axis, side in itertools.product(range(3), (0, 1)):
            on_face = [e for e in group if all(_position(c)[axis] == side for c in tables.EDGES[e])]
            assert len(on_face) % 2 == 0


@pytest.mark.parametrize("case", CASES)
def test_complement_symmetry(case: int) -> None:
    groups = {frozenset(g) for g in _groups(case)}
    complement = {frozenset(g) for g in _groups(255 - case)}
    if _alternating_faces(case):
        # Same crossings, but the ambiguous faces are resolved the other way round.
        assert set().union(*groups) == set().union(*complement)
    else:
        assert groups == complement


def test_vertex_count_histogram() -> None:
    # Two patches: 2 inside corners sharing no edge (12 + 4), 3 inside corners with one
    # ambiguous face (24), 4 with two (30), 5 with three (8), 2 outside corners opposite
    # through the body (4). Three: 3 inside corners round an outside one (8). Four: the two
    # checkerboards. None: all in or all out.
    assert Counter(tables.NUM_VD_TABLE) == {0: 2, 1: 162, 2: 82, 3: 8, 4: 2}
    assert sum(len(_patches_from_regions(c)) == 2 for c in CASES) == 82


@pytest.mark.parametrize("case", CASES)
def test_ambiguity_check_marks_single_patch_single_ambiguous_face(case: int) -> None:
    flag, dx, dy, dz, inverted = tables.CHECK_TABLE[case]
    faces = _alternating_faces(case)
    expected = len(faces) == 1 and len(_patches_from_regions(case)) == 1
    assert flag == int(expected)
    if not expected:
        assert (dx, dy, dz, inverted) == (0, 0, 0, 0)
        return
    axis, side = faces[0]
    direction = [0, 0, 0]
    direction[axis] = 2 * side - 1
    assert [dx, dy, dz] == direction
    assert _crossing_edges(inverted) == _crossing_edges(case)
    assert tables.NUM_VD_TABLE[inverted] == 2
    assert sum(_inside(case)) in (5, 6)


def test_ambiguity_count() -> None:
    assert sum(row[0] for row in tables.CHECK_TABLE) == 36


# Rows read by hand from upstream's tables.py (MaxtirError/FlexiCubes @815e075): the group
# order decides vertex order, which no property above pins down.
UPSTREAM_ROWS = {
    6: [[0, 1, 9], [4, 7, 8]],
    20: [[4, 7, 8], [2, 3, 11]],
    22: [[0, 1, 9], [4, 7, 8], [2, 3, 11]],
    105: [[0, 3, 8], [4, 5, 9], [1, 2, 10], [6, 7, 11]],
    219: [[4, 7, 8], [1, 2, 10]],
    231: [[4, 5, 9], [2, 3, 11]],
}
UPSTREAM_CHECKS = {61: (1, 1, 0, 0, 194), 94: (1, 0, -1, 0, 161), 249: (1, 0, 0, -1, 6)}


def test_rows_read_from_upstream() -> None:
    for case, rows in UPSTREAM_ROWS.items():
        assert _groups(case) == rows, case
    for case, row in UPSTREAM_CHECKS.items():
        assert tables.CHECK_TABLE[case] == row
