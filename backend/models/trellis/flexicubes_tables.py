"""Dual Marching Cubes case tables for FlexiCubes, generated here from the cube's geometry.

FlexiCubes (Shen et al. 2023) puts one dual vertex per surface patch of a cube. For each of the
256 corner-sign cases this module derives, with no typed-in table:

- ``DMC_TABLE`` (256, 4, 7): the cube edges of each patch, one row per dual vertex, -1 padded;
- ``NUM_VD_TABLE`` (256,): the number of dual vertices (patches) of the case;
- ``CHECK_TABLE`` (256, 5): the C16/C19 ambiguity fix as ``(flag, dx, dy, dz, inverted case)``.

Conventions (those of FlexiCubes, so that cases, vertices and faces line up with upstream):

- corner ``i`` sits at ``(i & 1, (i >> 1) & 1, (i >> 2) & 1)`` (x fastest); case bit ``i`` is set
  where the corner is inside (sdf < 0);
- the 12 edges follow the classic marching-cubes numbering with y as its "vertical" axis: edges
  0-3 go round the y = 0 face from corner 0 (0-1, 1-5, 5-4, 4-0), edges 4-7 round the y = 1 face
  the same way, edges 8-11 join the two rings. x and z edges run from the lower corner index to
  the higher, y edges from y = 1 to y = 0 (FlexiCubes' orientation: it decides which end of an
  edge is "first" when faces are wound and when edges are sorted).

How the tables are derived:

1. Patches. The sign-change edges of a cube are linked where a marching-cubes segment joins
   them on a face: a face with two sign-change edges links them; a face with four (the
   ambiguous, diagonal face) links the two edges at each inside corner, i.e. the inside corners
   are kept apart. A patch is a connected component of this graph, and the interior is never
   split further (no marching-cubes-33 tunnels).
2. Order. Edges of a patch ascend. Patches are ordered by the lowest corner they cut off on the
   minority side: the lowest inside corner their edges touch when the case has at most four
   inside corners, else the lowest outside corner (ties, which never occur, by the edge lists).
3. Ambiguity. A case with exactly one ambiguous face whose sign-change edges form one patch
   (these are FlexiCubes' C16 and C19 families: 5 or 6 inside corners) is flagged, with the
   outward normal of that face as direction. Where two flagged cubes share that face, both make
   one vertex joined to the other by all four of the face's quads (a non-manifold edge), so
   FlexiCubes replaces both by the complement case: the same sign-change edges, the face
   resolved the other way, two vertices each.

Checked against upstream (MaxtirError/FlexiCubes @815e075, ``tables.py``, Apache-2.0), which
we read but do not copy: a throw-away script outside the repository loaded upstream's file and
compared all 256 cases. ``DMC_TABLE`` agrees entry for entry (groups, group order, edge order and
padding), as do ``NUM_VD_TABLE`` and ``CHECK_TABLE`` (the same 36 flagged cases, directions and
inverted cases); upstream's ``tet_table`` is not used at inference and is not generated. By
hand we also read cases 6 (corners 1, 2: ``[0, 1, 9], [4, 7, 8]``), 20 (corners 2, 4:
``[4, 7, 8], [2, 3, 11]``, the order that a plain sort would get wrong), 219, 231 (order by the
outside corners), 61 (flag, +x, inverted 194) and 249 (flag, -z, inverted 6). The corner and
edge numbering were read from upstream's ``flexicubes.py`` (``cube_corners``, ``cube_edges``).
The rules in steps 1-3 are ours, found by that comparison; nothing else depends on upstream.
"""

from __future__ import annotations

CORNERS: tuple[tuple[int, int, int], ...] = tuple(
    (corner & 1, (corner >> 1) & 1, (corner >> 2) & 1) for corner in range(8)
)

MAX_GROUPS = 4
MAX_GROUP_EDGES = 7


def _corner_index(x: int, y: int, z: int) -> int:
    return x + 2 * y + 4 * z


def _edges() -> tuple[tuple[int, int], ...]:
    """The 12 edges as (first, second) corner pairs in FlexiCubes' numbering and orientation."""
    # Round the y = 0 face starting at the origin: (x, z) = (0,0) -> (1,0) -> (1,1) -> (0,1).
    ring = [_corner_index(x, 0, z) for x, z in ((0, 0), (1, 0), (1, 1), (0, 1))]
    edges = []
    for lift in (0, 2):  # the y = 0 ring, then the y = 1 ring (+2 is one step in y)
        for i in range(4):
            a, b = ring[i] + lift, ring[(i + 1) % 4] + lift
            edges.append((min(a, b), max(a, b)))
    edges.extend((corner + 2, corner) for corner in ring)  # y edges, from y = 1 down to y = 0
    return tuple(edges)


EDGES: tuple[tuple[int, int], ...] = _edges()

# The six faces as (axis, side), in the order the direction vectors use; each face's corners.
FACES: tuple[tuple[int, int], ...] = tuple((axis, side) for axis in range(3) for side in (0, 1))


def _face_corners(axis: int, side: int) -> list[int]:
    return [c for c in range(8) if CORNERS[c][axis] == side]


def _face_edges(axis: int, side: int) -> list[int]:
    corners = set(_face_corners(axis, side))
    return [e for e, (a, b) in enumerate(EDGES) if a in corners and b in corners]


def inside_corners(case: int) -> list[bool]:
    """Per corner, whether ``case`` marks it inside (bit set)."""
    return [bool((case >> corner) & 1) for corner in range(8)]


def sign_change_edges(case: int) -> list[int]:
    """Edges whose two corners differ in sign, ascending."""
    inside = inside_corners(case)
    return [e for e, (a, b) in enumerate(EDGES) if inside[a] != inside[b]]


def ambiguous_faces(case: int) -> list[int]:
    """Indices into ``FACES`` of the faces whose corners alternate in sign (four crossings)."""
    return [
        f
        for f, (axis, side) in enumerate(FACES)
        if len(set(sign_change_edges(case)) & set(_face_edges(axis, side))) == 4
    ]


def patches(case: int) -> list[list[int]]:
    """The case's edge groups (one per dual vertex), in FlexiCubes' order (module docstring)."""
    inside = inside_corners(case)
    crossing = sign_change_edges(case)
    parent = {e: e for e in crossing}

    def root(e: int) -> int:
        while parent[e] != e:
            e = parent[e]
        return e

    def link(a: int, b: int) -> None:
        parent[root(a)] = root(b)

    for axis, side in FACES:
        on_face = [e for e in _face_edges(axis, side) if e in parent]
        if len(on_face) == 2:
            link(*on_face)
        elif len(on_face) == 4:  # ambiguous face: cut each inside corner off on its own
            for corner in _face_corners(axis, side):
                if inside[corner]:
                    link(*[e for e in on_face if corner in EDGES[e]])
    groups: dict[int, list[int]] = {}
    for e in crossing:
        groups.setdefault(root(e), []).append(e)
    minority_inside = sum(inside) <= 4

    def order_key(group: list[int]) -> tuple[int, list[int]]:
        corners = [c for e in group for c in EDGES[e] if inside[c] == minority_inside]
        return min(corners), group

    return sorted((sorted(g) for g in groups.values()), key=order_key)


def ambiguity_check(case: int) -> tuple[int, int, int, int, int]:
    """``(1, dx, dy, dz, 255 - case)`` for a C16/C19 case, else zeros (module docstring)."""
    faces = ambiguous_faces(case)
    if len(faces) != 1 or len(patches(case)) != 1:
        return (0, 0, 0, 0, 0)
    axis, side = FACES[faces[0]]
    direction = [0, 0, 0]
    direction[axis] = 1 if side == 1 else -1
    return (1, direction[0], direction[1], direction[2], 255 - case)


def _padded(groups: list[list[int]]) -> list[list[int]]:
    rows = [g + [-1] * (MAX_GROUP_EDGES - len(g)) for g in groups]
    return rows + [[-1] * MAX_GROUP_EDGES] * (MAX_GROUPS - len(rows))


DMC_TABLE: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
    tuple(tuple(row) for row in _padded(patches(case))) for case in range(256)
)
NUM_VD_TABLE: tuple[int, ...] = tuple(len(patches(case)) for case in range(256))
CHECK_TABLE: tuple[tuple[int, int, int, int, int], ...] = tuple(
    ambiguity_check(case) for case in range(256)
)
