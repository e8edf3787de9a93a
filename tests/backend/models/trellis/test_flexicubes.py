"""Sparse FlexiCubes against a dense, loop-by-loop reference of the same maths.

The reference walks every cube of a tiny dense grid in order (as upstream's dense FlexiCubes
does with tensors): surface cubes, C16/C19 fix, dual vertices numbered by group count, then
cube, then group; quads per interior sign-change edge sorted by (first, second) vertex id, the
flipped ones first; gamma split. Only the case tables are shared with the code under test.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from backend.models.trellis import flexicubes
from backend.models.trellis import flexicubes_tables as tables


def _vertex_id(point: tuple[int, int, int], res: int) -> int:
    return (point[0] * (res + 1) + point[1]) * (res + 1) + point[2]


def _add(p: tuple[int, ...], q: tuple[int, ...]) -> tuple[int, int, int]:
    return (p[0] + q[0], p[1] + q[1], p[2] + q[2])


def reference_flexicubes(res, positions, sdf, weights, attributes, fix_ambiguity=True):
    """Dense reference. positions (R^3, 3), sdf (R^3,), weights (res^3, 21) raw, attributes
    (R^3, C); R = res + 1, ids x slowest. Returns vertices (list of (3,)), faces, attributes."""
    cubes = list(itertools.product(range(res), repeat=3))
    cube_of = {cube: i for i, cube in enumerate(cubes)}

    def corner_ids(cube):
        return [_vertex_id(_add(cube, c), res) for c in tables.CORNERS]

    inside = {cube: [bool(sdf[v] < 0) for v in corner_ids(cube)] for cube in cubes}
    surface = [cube for cube in cubes if 0 < sum(inside[cube]) < 8]
    case = {cube: sum(1 << i for i, b in enumerate(inside[cube]) if b) for cube in surface}
    fixed = dict(case)
    for cube in surface:
        flag, dx, dy, dz, inverted = tables.CHECK_TABLE[case[cube]]
        other = _add(cube, (dx, dy, dz))
        if fix_ambiguity and flag and other in case and tables.CHECK_TABLE[case[other]][0]:
            fixed[cube] = inverted

    vertices, vertex_attrs, vertex_cube, slot_vertex = [], [], [], {}
    for count in range(1, 5):
        for cube in (c for c in surface if tables.NUM_VD_TABLE[fixed[c]] == count):
            w = weights[cube_of[cube]]
            beta = torch.tanh(w[:12]) * 0.99 + 1
            alpha = torch.tanh(w[12:20]) * 0.99 + 1
            ids = corner_ids(cube)
            for row in tables.DMC_TABLE[fixed[cube]][:count]:
                total_x, total_c, total_beta = 0.0, 0.0, 0.0
                for edge in (e for e in row if e >= 0):
                    a, b = tables.EDGES[edge]
                    wa, wb = sdf[ids[a]] * alpha[a], sdf[ids[b]] * alpha[b]
                    x = (positions[ids[a]] * wb - positions[ids[b]] * wa) / (wb - wa)
                    c = (attributes[ids[a]] * wb - attributes[ids[b]] * wa) / (wb - wa)
                    total_x = total_x + beta[edge] * x
                    total_c = total_c + beta[edge] * c
                    total_beta = total_beta + beta[edge]
                    slot_vertex[(cube, edge)] = len(vertices)
                vertices.append(total_x / total_beta)
                vertex_attrs.append(total_c / total_beta)
                vertex_cube.append(cube)

    edges = {}  # (first id, second id) -> [(cube, edge)] for every surface cube holding it
    for cube in surface:
        ids = corner_ids(cube)
        for edge, (a, b) in enumerate(tables.EDGES):
            if inside[cube][a] != inside[cube][b]:
                edges.setdefault((ids[a], ids[b]), []).append((cube, edge))
    flipped, kept = [], []
    for key in sorted(edges):
        holders = edges[key]
        if len(holders) < 4:  # on the grid's boundary
            continue
        quad = [slot_vertex[h] for h in sorted(holders, key=lambda h: cube_of[h[0]])]
        if sdf[key[0]] > 0:
            flipped.append([quad[i] for i in (0, 1, 3, 2)])
        else:
            kept.append([quad[i] for i in (2, 3, 1, 0)])
    faces = []
    for quad in flipped + kept:
        gamma = [torch.sigmoid(weights[cube_of[vertex_cube[v]], 20]) * 0.99 + 0.005 for v in quad]
        if gamma[0] * gamma[2] > gamma[1] * gamma[3]:
            faces += [[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]]
        else:
            faces += [[quad[0], quad[1], quad[3]], [quad[3], quad[1], quad[2]]]
    return vertices, faces, vertex_attrs


def _random_grid(seed: int, res: int, keep: float):
    """A random dense field where a (1 - keep) share of vertices/cubes sit at the defaults."""
    generator = torch.Generator().manual_seed(seed)
    count = (res + 1) ** 3
    points = flexicubes.grid_points(torch.arange(count), res).double()
    sdf = torch.randn(count, generator=generator, dtype=torch.float64)
    deform = torch.randn(count, 3, generator=generator, dtype=torch.float64)
    attrs = torch.rand(count, 4, generator=generator, dtype=torch.float64)
    weights = torch.randn(res**3, 21, generator=generator, dtype=torch.float64)
    given = torch.rand(count, generator=generator) < keep
    given_cubes = torch.rand(res**3, generator=generator) < keep
    sdf[~given], deform[~given], attrs[~given] = 1.0, 0.0, 0.5
    weights[~given_cubes] = 0.0
    positions = points / res - 0.5 + 0.5 / res * torch.tanh(deform)
    cube_points = torch.tensor(list(itertools.product(range(res), repeat=3)))
    cube_ids = flexicubes.grid_ids(cube_points, res)
    return positions, sdf, weights, attrs, given, cube_ids, given_cubes


@pytest.mark.parametrize(
    ("seed", "res", "keep"), [(0, 3, 1.0), (1, 4, 1.0), (2, 5, 0.6), (3, 5, 0.4), (4, 6, 0.5)]
)
def test_sparse_matches_dense_reference(seed: int, res: int, keep: float) -> None:
    positions, sdf, weights, attrs, given, cube_ids, given_cubes = _random_grid(seed, res, keep)
    mesh = flexicubes.extract(
        res,
        torch.arange(len(sdf))[given],
        positions[given],
        sdf[given],
        cube_ids[given_cubes],
        weights[given_cubes],
        vertex_attributes=attrs[given],
        attribute_default=0.5,
    )
    vertices, faces, vertex_attrs = reference_flexicubes(res, positions, sdf, weights, attrs)
    assert len(faces) > 0
    assert mesh.faces.tolist() == faces
    torch.testing.assert_close(mesh.vertices, torch.stack(vertices), rtol=0, atol=1e-12)
    assert mesh.attributes is not None
    torch.testing.assert_close(mesh.attributes, torch.stack(vertex_attrs), rtol=0, atol=1e-12)


def _edge_uses(faces: torch.Tensor) -> torch.Tensor:
    """How many faces use each undirected edge."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(edges.sort(dim=1).values, dim=0, return_counts=True)[1]


def test_ambiguity_fix_keeps_two_flagged_neighbours_manifold() -> None:
    # A case-61 cube (ambiguous face +x) at (1, 1, 1) and a case-62 cube (face -x) at
    # (2, 1, 1): their shared face has the same diagonal inside. Every other grid vertex is
    # outside; at res 4 every crossing edge is interior, so the surface must be closed.
    res = 4
    inside_points = {
        _add(cube, offset)
        for cube, case in (((1, 1, 1), 61), ((2, 1, 1), 62))
        for corner, offset in enumerate(tables.CORNERS)
        if case >> corner & 1
    }
    ids = torch.tensor(sorted(_vertex_id(p, res) for p in inside_points))
    points = flexicubes.grid_points(ids, res).double()
    mesh = flexicubes.extract(
        res,
        ids,
        points / res - 0.5,
        -torch.ones(len(ids), dtype=torch.float64),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 21, dtype=torch.float64),
    )
    assert mesh.faces.shape[0] > 0 and bool((_edge_uses(mesh.faces) == 2).all())
    # Without the fix the two cubes' single vertices share an edge of four faces.
    count = (res + 1) ** 3
    positions = flexicubes.grid_points(torch.arange(count), res).double() / res - 0.5
    sdf = torch.ones(count, dtype=torch.float64)
    sdf[ids] = -1.0
    weights = torch.zeros(res**3, 21, dtype=torch.float64)
    _, faces, _ = reference_flexicubes(res, positions, sdf, weights, positions)
    assert mesh.faces.tolist() == faces
    _, unfixed, _ = reference_flexicubes(
        res, positions, sdf, weights, positions, fix_ambiguity=False
    )
    assert int(_edge_uses(torch.tensor(unfixed)).max()) == 4


def test_attributes_interpolate_like_the_vertices() -> None:
    # Attributes equal to the vertex positions must come out equal to the dual vertices.
    positions, sdf, weights, _, _, cube_ids, _ = _random_grid(7, 6, 1.0)
    mesh = flexicubes.extract(
        6,
        torch.arange(len(sdf)),
        positions,
        sdf,
        cube_ids,
        weights,
        vertex_attributes=positions.clone(),
    )
    assert mesh.attributes is not None and mesh.vertices.shape[0] > 100
    torch.testing.assert_close(mesh.attributes, mesh.vertices, rtol=0, atol=1e-12)


def test_no_surface_gives_an_empty_mesh() -> None:
    ids = torch.arange(27)
    mesh = flexicubes.extract(
        2,
        ids,
        torch.zeros(27, 3),
        torch.ones(27),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 21),
        vertex_attributes=torch.zeros(27, 6),
    )
    assert mesh.vertices.shape == (0, 3) and mesh.faces.shape == (0, 3)
    assert mesh.attributes is not None and mesh.attributes.shape == (0, 6)
    nothing = flexicubes.extract(
        2,
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 3),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 21),
    )
    assert nothing.vertices.shape == (0, 3) and nothing.attributes is None


def test_memory_follows_the_active_vertices_at_res_512() -> None:
    # A dense 512^3 run would need ~1e9 cube-corner ids; a small blob must take milliseconds.
    res, centre = 512, torch.tensor([300, 200, 100])
    blob = torch.stack(torch.meshgrid(*[torch.arange(-3, 4)] * 3, indexing="ij"), -1)
    points = blob.reshape(-1, 3) + centre
    ids = flexicubes.grid_ids(points, res)
    sdf = (points - centre).double().norm(dim=1) - 2.5
    mesh = flexicubes.extract(
        res,
        ids,
        points.double() / res - 0.5,
        sdf,
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, 21, dtype=torch.float64),
    )
    centre_world = centre.double() / res - 0.5
    radii = (mesh.vertices - centre_world).norm(dim=1) * res
    assert mesh.faces.shape[0] > 50 and float((radii - 2.5).abs().max()) < 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    positions, sdf, weights, attrs, given, cube_ids, given_cubes = _random_grid(11, 8, 0.7)
    args = (
        8,
        torch.arange(len(sdf))[given],
        positions[given].float(),
        sdf[given].float(),
        cube_ids[given_cubes],
        weights[given_cubes].float(),
    )
    cpu = flexicubes.extract(*args, vertex_attributes=attrs[given].float())
    gpu = flexicubes.extract(
        *(a.cuda() if torch.is_tensor(a) else a for a in args),
        vertex_attributes=attrs[given].float().cuda(),
    )
    assert torch.equal(gpu.faces.cpu(), cpu.faces)
    torch.testing.assert_close(gpu.vertices.cpu(), cpu.vertices, rtol=0, atol=1e-6)
    assert gpu.attributes is not None and cpu.attributes is not None
    torch.testing.assert_close(gpu.attributes.cpu(), cpu.attributes, rtol=0, atol=1e-6)
