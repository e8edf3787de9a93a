"""Marching-cubes lookup tables in the layout of Shap-E's mesh decoder.

diffusers' ``MeshDecoder`` keeps its triangle table as two buffers that come from the checkpoint:
``cases`` (256, 5, 3) int64 (per corner-sign case, up to five triangles given as cube-local edge
numbers) and ``masks`` (256, 5) bool (which of the five are used). A checkpoint written from a
freshly built decoder holds zeros there and would extract no surface at all, so tiny test
pipelines, and any checkpoint found without tables, get them from :func:`shap_e_mc_tables`.

The tables are derived, not typed in: each of the 256 corner cases is polygonised once on a
single 2x2x2 cube with the classic Lorensen table (scikit-image), and every vertex, which lands
on an edge midpoint, is renamed to the decoder's edge numbering. The decoder's conventions:
corner bit ``x + 2*y + 4*z`` is set where the field is > 0 (inside); edges 0-3 run along x at
(y, z) = (0,0), (1,0), (0,1), (1,1); edges 4-7 along y at (x, z) in that order; edges 8-11
along z at (x, y) in that order. Triangles wind counter-clockwise seen from outside.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

MAX_TRIANGLES = 5


def _edge_number(midpoint: np.ndarray) -> int:
    """Decoder edge number of a cube-edge ``midpoint`` (3,) with one coordinate 0.5."""
    axis = int(np.argmin(np.abs(midpoint - 0.5)))
    others = [round(float(midpoint[a])) for a in range(3) if a != axis]
    return 4 * axis + others[0] + 2 * others[1]


def _case_volume(case: int) -> np.ndarray:
    """(2, 2, 2) float32 field indexed [x, y, z]: +1 where ``case`` sets the corner bit."""
    volume = np.empty((2, 2, 2), np.float32)
    for corner in range(8):
        x, y, z = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
        volume[x, y, z] = 1.0 if (case >> corner) & 1 else -1.0
    return volume


@lru_cache(maxsize=1)
def shap_e_mc_tables() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(cases, masks)``: (256, 5, 3) int64 edge numbers and (256, 5) bool."""
    from skimage import measure  # optional at import time; only test set-up and repair need it

    cases = np.zeros((256, MAX_TRIANGLES, 3), np.int64)
    masks = np.zeros((256, MAX_TRIANGLES), bool)
    for case in range(1, 255):  # 0 and 255: the cube is all outside / all inside, no surface
        vertices, faces, _, _ = measure.marching_cubes(
            _case_volume(case), 0.0, method="lorensen"
        )
        edges = np.array([_edge_number(v) for v in vertices], np.int64)
        if len(faces) > MAX_TRIANGLES:
            raise AssertionError(f"case {case} gives {len(faces)} triangles")
        # scikit-image winds these clockwise seen from the side where the field is lower
        # (outside here), so reverse each triangle.
        cases[case, : len(faces)] = edges[faces[:, ::-1]]
        masks[case, : len(faces)] = True
    return cases, masks


def tables_look_filled(cases: np.ndarray, masks: np.ndarray) -> bool:
    """True when a decoder's buffers hold a table (zeros mean a never-filled decoder)."""
    return bool(masks.any()) and bool(cases.any())
