"""Plane quadrics (Garland-Heckbert) and the best placement of a merged vertex, compiled.

A quadric is the symmetric 4x4 matrix [A b; b^T c] of summed squared plane distances, stored as
ten coefficients in the order a00 a01 a02 b0 a11 a12 b1 a22 b2 c. ``placement`` solves for the
point of least error (or picks an endpoint when asked, or when the system is ill-posed) and
``edge_cost`` is the error of collapsing an edge there. Used by qem.py.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def quadric_cost(q, x, y, z):
    return (
        q[0] * x * x + 2 * q[1] * x * y + 2 * q[2] * x * z + 2 * q[3] * x
        + q[4] * y * y + 2 * q[5] * y * z + 2 * q[6] * y
        + q[7] * z * z + 2 * q[8] * z + q[9]
    )  # fmt: skip


@numba.njit(cache=True)
def placement(q, pu, pv, endpoint, pinned_u, pinned_v):
    """Best position for the merged vertex and its cost; which=0 u, 1 v, 2 elsewhere."""
    if pinned_u and not pinned_v:
        return pu[0], pu[1], pu[2], quadric_cost(q, pu[0], pu[1], pu[2]), 0
    if pinned_v and not pinned_u:
        return pv[0], pv[1], pv[2], quadric_cost(q, pv[0], pv[1], pv[2]), 1
    if not endpoint:
        a00, a01, a02, a11, a12, a22 = q[0], q[1], q[2], q[4], q[5], q[7]
        det = (
            a00 * (a11 * a22 - a12 * a12) - a01 * (a01 * a22 - a12 * a02)
            + a02 * (a01 * a12 - a11 * a02)
        )  # fmt: skip
        scale = (a00 + a11 + a22) ** 3
        if abs(det) > 1e-9 * abs(scale) and scale != 0.0:
            b0, b1, b2 = -q[3], -q[6], -q[8]
            i00 = a11 * a22 - a12 * a12
            i01 = a02 * a12 - a01 * a22
            i02 = a01 * a12 - a02 * a11
            i11 = a00 * a22 - a02 * a02
            i12 = a01 * a02 - a00 * a12
            i22 = a00 * a11 - a01 * a01
            x = (i00 * b0 + i01 * b1 + i02 * b2) / det
            y = (i01 * b0 + i11 * b1 + i12 * b2) / det
            z = (i02 * b0 + i12 * b1 + i22 * b2) / det
            # The optimum must stay near the edge; far away means an ill-posed quadric.
            span = np.sqrt(np.sum((pu - pv) ** 2))
            mx, my, mz = (pu[0] + pv[0]) / 2, (pu[1] + pv[1]) / 2, (pu[2] + pv[2]) / 2
            if (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= (2.0 * span) ** 2:
                return x, y, z, quadric_cost(q, x, y, z), 2
    cu = quadric_cost(q, pu[0], pu[1], pu[2])
    cv = quadric_cost(q, pv[0], pv[1], pv[2])
    if not endpoint:
        mx, my, mz = (pu[0] + pv[0]) / 2, (pu[1] + pv[1]) / 2, (pu[2] + pv[2]) / 2
        cm = quadric_cost(q, mx, my, mz)
        if cm < cu and cm < cv:
            return mx, my, mz, cm, 2
    if cu <= cv:
        return pu[0], pu[1], pu[2], cu, 0
    return pv[0], pv[1], pv[2], cv, 1


@numba.njit(cache=True)
def edge_cost(u, w, pos, quadrics, border, endpoint, q):
    for t in range(10):
        q[t] = quadrics[u, t] + quadrics[w, t]
    pin_u = border[u] and not border[w]
    pin_w = border[w] and not border[u]
    return placement(q, pos[u], pos[w], endpoint, pin_u, pin_w)[3]


@numba.njit(cache=True, inline="always")
def add_plane(quadrics, w, a, b, c, d, weight):
    quadrics[w, 0] += weight * a * a
    quadrics[w, 1] += weight * a * b
    quadrics[w, 2] += weight * a * c
    quadrics[w, 3] += weight * a * d
    quadrics[w, 4] += weight * b * b
    quadrics[w, 5] += weight * b * c
    quadrics[w, 6] += weight * b * d
    quadrics[w, 7] += weight * c * c
    quadrics[w, 8] += weight * c * d
    quadrics[w, 9] += weight * d * d
