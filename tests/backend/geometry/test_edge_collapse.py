"""edge_collapse: one collapse on the ring structure, and the hot path compiled without
reference counting (issue 18: atomic counts on shared arrays were the sweeps' overhead)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from backend.geometry import edge_collapse, qem, quadrics, tolerances
from tests.support.analytic_meshes import marching_cubes_mesh, sphere_field


def _sphere_state(spare: int) -> dict:
    """A sphere's decimator state with ``spare`` free entries in ``refs`` after ``top``."""
    vertices, faces = marching_cubes_mesh(sphere_field, 12)
    pos = np.asarray(vertices, np.float64)
    faces = np.ascontiguousarray(faces, np.int64)
    quads, border = qem.prepare_quadrics(pos, faces, tolerances.BOUNDARY_WEIGHT)
    face_alive = np.ones(len(faces), bool)
    refs, vstart, vcount, top = edge_collapse.build_refs(faces, face_alive, len(pos), 0)
    return {
        "pos": pos, "faces": faces, "quadrics": quads, "border": border,
        "face_alive": face_alive, "vertex_alive": np.ones(len(pos), bool),
        "version": np.zeros(len(pos), np.int64), "parent": np.arange(len(pos)),
        "refs": np.concatenate([refs[:top], np.full(spare, -1, np.int64)]),
        "vstart": vstart, "vcount": vcount, "top": top,
    }  # fmt: skip


def _try(state: dict, u: int, v: int) -> tuple[int, int, int]:
    s = state
    return edge_collapse.try_collapse(
        u, v, s["pos"], s["faces"], s["quadrics"], s["border"], False, tolerances.FLIP_COS,
        tolerances.MIN_FACE_QUALITY, s["face_alive"], s["vertex_alive"], s["version"],
        s["parent"], np.zeros(len(s["pos"]), np.int64), np.zeros(1, np.int64),
        np.empty(qem.RING_MAX, np.int64), np.empty(qem.RING_MAX, np.int64), s["refs"],
        s["vstart"], s["vcount"], s["top"], np.empty(10),
    )  # fmt: skip


def _collapsible_edge() -> tuple[int, int]:
    """The first edge of the sphere that collapses when refs has room."""
    for face in _sphere_state(spare=0)["faces"][:50]:
        for k in range(3):
            state = _sphere_state(spare=64)
            if _try(state, face[k], face[(k + 1) % 3])[0] >= 0:
                return int(face[k]), int(face[(k + 1) % 3])
    raise AssertionError("no edge of the sphere collapses")


def test_try_collapse_merges_an_edge_when_refs_has_room() -> None:
    state = _sphere_state(spare=64)
    u, v = _collapsible_edge()
    kept, removed, top = _try(state, u, v)
    assert kept in (u, v) and removed == 2
    gone = v if kept == u else u
    assert not state["vertex_alive"][gone] and state["parent"][gone] == kept
    assert top > state["top"] and state["vstart"][kept] == state["top"]
    ring = state["refs"][state["vstart"][kept] : top]
    assert state["face_alive"][ring].all() and (state["faces"][ring] == kept).any(axis=1).all()
    assert not (state["faces"][state["face_alive"]] == gone).any()


def test_try_collapse_refuses_what_refs_cannot_hold_and_changes_nothing() -> None:
    state = _sphere_state(spare=0)  # callers compact refs first; without room: no collapse
    before = {name: np.copy(value) for name, value in state.items()}
    u, v = _collapsible_edge()
    assert _try(state, u, v) == (-1, 0, state["top"])
    for name, value in before.items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)


def _hot_calls() -> dict:
    """One call of each hot-path kernel on a sphere's state: (dispatcher, arguments)."""
    s = _sphere_state(spare=64)
    ring_u, ring_v, q, stamp = (np.empty(8, np.int64), np.empty(8, np.int64), np.zeros(10),
                                np.zeros(1, np.int64))  # fmt: skip
    mark = np.zeros(len(s["pos"]), np.int64)
    state = (s["face_alive"], s["vertex_alive"], s["version"], s["parent"])
    rings = (s["refs"], s["vstart"], s["vcount"], s["top"])
    geometry = (s["pos"], s["faces"], s["quadrics"], s["border"])
    return {
        "try_collapse": (edge_collapse.try_collapse, (
            0, 1, *geometry, False, 0.2, 0.02, *state, mark, stamp, ring_u, ring_v, *rings, q)),
        "collapse_ok": (edge_collapse.collapse_ok, (
            0, 1, 0.0, 0.0, 0.0, s["pos"], s["faces"], ring_u, 0, ring_v, 0, mark, stamp,
            s["border"], 0.2, 0.02)),
        "merge_edge": (edge_collapse.merge_edge, (
            0, 1, 0.0, 0.0, 0.0, q, *geometry, *state, ring_u, 0, ring_v, 0, *rings)),
        "ring": (edge_collapse.ring, (0, s["vstart"], s["vcount"], s["refs"], s["face_alive"],
                                      ring_u)),
        "place": (quadrics.place, (q, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, False, False, False)),
        "edge_cost": (quadrics.edge_cost, (0, 1, s["pos"], s["quadrics"], s["border"], False,
                                           q)),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_hot_calls()))
def test_hot_path_compiles_without_reference_counts(name: str) -> None:
    """Compiled afresh (cached code cannot be inspected) with the kernel's own options: no
    atomic reference count anywhere in it."""
    dispatcher, args = _hot_calls()[name]
    options = {k: v for k, v in dispatcher.targetoptions.items() if k != "cache"}
    fresh = numba.njit(**options)(dispatcher.py_func)
    fresh(*args)
    (ir,) = fresh.inspect_llvm().values()
    assert "NRT_incref" not in ir and "NRT_decref" not in ir
